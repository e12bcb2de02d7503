"""Batch prediction and feature caching on Ray Data (issue 17), on one local Ray instance for the module.

The numbers must be ``predict``'s (same decoding, same feature cache, same network, same head), every file
must get exactly one row, even when a replica is SIGKILLed mid-run, and unreadable files must be rows with
the reason. (A job killed whole and run again: test_ray_resume.py.)
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

import transferlab as tl

from ..conftest import OXFORD_MINI, TINY, make_photo, needs_oxford

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]'); the Ray tests need it")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow comes with ray[data]")

from transferlab.cluster import RayConfig, ray_extract, ray_predict  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance with 2 CPUs for every test here (starting one takes seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray-photos")
    for c, name in enumerate(["cat", "dog", "fox"]):
        for i in range(8):
            make_photo(root / name / f"{name}_{i}.jpg", c, seed=100 * c + i)
    return root


@pytest.fixture(scope="module")
def tiny_run(photos: Path, tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> tl.Run:
    return tl.train(tl.load_dataset(photos), backbone=TINY, weights=tiny_weights, out=tmp_path_factory.mktemp("run") / "run", precision="fp32")


def bad_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a photo")
    whole = (OXFORD_MINI / "images" / "Abyssinian_1.jpg") if OXFORD_MINI.is_dir() else make_photo(folder / "whole.jpg", 0, 0, (200, 200))
    (folder / "truncated.jpg").write_bytes(whole.read_bytes()[:600])
    return [folder / "empty.jpg", folder / "notes.jpg", folder / "truncated.jpg"]


def read_rows(folder: Path) -> list[dict]:
    """The rows of a prediction folder (every part, in order; the manifest and temporary files are skipped)."""
    return pq.read_table(folder).to_pylist()


def assert_same_as_predict(rows: list[dict], plain: list[dict], k: int) -> None:
    """Same files in the same order, same top-1, every top-k probability within 1e-4, same reasons."""
    assert [r["path"] for r in rows] == [p["path"] for p in plain]
    for row, want in zip(rows, plain):
        if "error" in want:
            assert row["error"] == want["error"] and row["label_1"] is None
            continue
        assert row["error"] is None and row["label_1"] == want["top"][0]["label"], row["path"]
        got = [row[f"prob_{i + 1}"] for i in range(k)]
        np.testing.assert_allclose(got, [t["prob"] for t in want["top"]], atol=1e-4, rtol=0)


@needs_oxford
@pytest.mark.slow
def test_ray_predict_with_two_workers_matches_predict_on_oxford_mini(local_ray, tmp_path: Path) -> None:
    # the bundled EfficientNet-Lite0 (ImageNet head) on Oxford photos, the GIF and the RGBA PNG named .jpg included
    images = sorted((OXFORD_MINI / "images").glob("*.jpg"))
    files = [p for p in images if p.name in ("Abyssinian_34.jpg", "Abyssinian_5.jpg")] + images[::25][:22] + bad_files(tmp_path / "bad")
    run = tl.from_backbone()
    plain = run.predict(files, 5, cache_dir=tmp_path / "cache")
    done = ray_predict(run, files, tmp_path / "predictions.parquet", 5, config=RayConfig(workers=2), cache_dir=tmp_path / "ray-cache", part_size=8)
    assert done.rows == len(files) and len(done.failed) == 3
    assert_same_as_predict(read_rows(done.path), plain, 5)


def test_a_sigkilled_replica_loses_and_duplicates_no_row(local_ray, tiny_run: tl.Run, tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    folder = tmp_path / "many"
    files = [make_photo(folder / f"p{i:03d}.jpg", i % 3, seed=i, size=(64, 64)) for i in range(96)]
    raylet = psutil.Process(ray._private.worker._global_node.all_processes["raylet"][0].process.pid)
    killed: list[int] = []
    lock = threading.Lock()

    def command_line(process) -> str:
        """A worker's command line, or "" for one that exits (or is a zombie) while we look: a race, not a failure."""
        try:
            return " ".join(process.cmdline())
        except psutil.Error:
            return ""

    def kill_one_replica(stage: str, done: int, total: int) -> None:
        with lock:
            if killed or done >= total:
                return
            replicas = [p for p in raylet.children(recursive=True) if "Predictor" in command_line(p)]
            if replicas:
                os.kill(replicas[0].pid, signal.SIGKILL)  # only a replica of this test's own Ray instance
                killed.append(replicas[0].pid)

    config = RayConfig(workers=2, batch_size=4, precision="fp32")
    done = ray_predict(tiny_run, files, tmp_path / "out", 1, config=config, cache_dir=tmp_path / "ray-cache", part_size=8, progress=kill_one_replica)
    assert killed, "no replica was running to kill"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    rows = read_rows(done.path)
    assert [r["path"] for r in rows] == [str(f) for f in files]  # each file once, in order
    plain = tiny_run.predict(files, 1, cache_dir=tmp_path / "cache", precision="fp32")
    assert_same_as_predict(rows, plain, 1)


def test_features_on_ray_fill_the_cache_a_later_train_reuses(local_ray, photos: Path, tiny_weights: Path, tmp_path: Path) -> None:
    ds = tl.load_dataset(photos)
    bb = tl.create_backbone(TINY, tiny_weights)
    paths = [s.path for s in ds.samples] + bad_files(tmp_path / "bad")
    first = ray_extract(bb.model, paths, cache_dir=tmp_path / "cache", config=RayConfig(workers=2, precision="fp32"))
    assert (first.computed, first.cached, len(first.failed)) == (len(ds.samples), 0, 3)
    from typer.testing import CliRunner

    from transferlab.cli import app

    again = CliRunner().invoke(app, ["features", str(photos), "--ray", "-b", TINY, "--weights", str(tiny_weights), "--cache-dir", str(tmp_path / "cache"), "--precision", "fp32", "-q"])
    assert again.exit_code == 0 and f"0 computed, {len(ds.samples)} already cached, 0 unreadable" in again.output, again.output
    run = tl.train(ds, backbone=TINY, weights=tiny_weights, cache_dir=tmp_path / "cache", precision="fp32")
    assert run.meta["timing"]["images_computed"] == 0
    multi = CliRunner().invoke(app, ["features", str(photos), "--ray", "-b", TINY, "--weights", str(tiny_weights), "--features", "multi", "--cache-dir", str(tmp_path / "cache"), "--precision", "fp32", "-q"])
    assert multi.exit_code == 0 and f"{len(ds.samples)} computed, 0 already cached" in multi.output, multi.output  # its own cache key
    run = tl.train(ds, backbone=TINY, weights=tiny_weights, features="multi", cache_dir=tmp_path / "cache", precision="fp32")
    assert run.meta["timing"]["images_computed"] == 0


def test_ray_predict_reads_and_fills_the_feature_cache_predict_uses(local_ray, tiny_run: tl.Run, photos: Path, tmp_path: Path) -> None:
    from transferlab.features import FeatureCache, pick_runtime
    from transferlab.features.cache import content_hash
    from transferlab.features.extract import cache_key

    files = sorted(photos.rglob("*.jpg"))[:12]
    cache = tmp_path / "cache"
    tiny_run.predict(files[:5], 2, cache_dir=cache, precision="fp32")  # predict caches the features of the first 5
    done = ray_predict(tiny_run, files, tmp_path / "out", 2, config=RayConfig(precision="fp32"), cache_dir=cache, part_size=4)
    assert (done.cached, done.computed, done.parts) == (5, 7, 3)  # predict's entries are read, the others computed
    assert_same_as_predict(read_rows(done.path), tiny_run.predict(files, 2, cache_dir=tmp_path / "cold", precision="fp32"), 2)  # cached or not
    key = cache_key(tiny_run.model, pick_runtime(precision="fp32"), tiny_run.record.backbone.fingerprint)
    assert FeatureCache(cache, key).hashes() >= {content_hash(f.read_bytes()) for f in files}  # filled under predict's key


def test_cli_predict_ray_writes_a_parquet_folder_with_reasons_from_paths_and_uris(local_ray, tiny_run: tl.Run, photos: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from transferlab.cli import app

    files = sorted(photos.rglob("*.jpg"))[:6] + bad_files(tmp_path / "bad")
    plain = tiny_run.predict(files, 2, cache_dir=tmp_path / "cache", precision="fp32")
    sources = [f"file://{p}" for p in files[:6]] + [str(p) for p in files[6:]]  # a pyarrow filesystem, and local paths
    out = tmp_path / "predictions"
    args = ["predict", str(tiny_run.directory), *sources, "--ray", "--out", str(out), "-k", "2", "--precision", "fp32", "--cache-dir", str(tmp_path / "cache"), "--part-size", "4", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output  # as plain predict: unreadable files make the exit code 1
    assert "9 rows in 3 part(s), 3 unreadable" in result.output and "0 images computed, 6 from the feature cache" in result.output
    assert sorted(p.name for p in out.iterdir())[0] == "_manifest.json" and len(list(out.glob("part-*.parquet"))) == 3
    rows = read_rows(out)
    assert list(rows[0]) == ["path", "label", "label_1", "prob_1", "label_2", "prob_2", "in_distribution", "error"]  # the run has a threshold
    assert [r["path"] for r in rows] == sources
    for row, want in zip(rows, plain):
        if "error" in want:
            assert row["error"] == want["error"] and row["label_1"] is None and row["in_distribution"] is None
        else:
            assert row["label_1"] == want["top"][0]["label"] and abs(row["prob_1"] - want["top"][0]["prob"]) <= 1e-4
            assert abs(row["in_distribution"] - want["score"]) <= 1e-4  # predict's own score
    again = CliRunner().invoke(app, args)  # a finished job run again: every part kept, nothing computed
    assert again.exit_code == 1 and "3 kept from an earlier run" in again.output and "0 images computed, 0 from" in again.output, again.output


def test_cli_predict_ray_option_errors_are_one_line(tiny_run: tl.Run, photos: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from transferlab.cli import app

    out = tmp_path / "p.parquet"
    (tmp_path / "old.parquet").write_bytes(b"PAR1")  # a single-file table, as earlier versions wrote
    refused = (["--ray"], ["--out", str(out)], ["--ray", "--out", str(tmp_path / "p.csv")], ["--ray", "--out", str(tmp_path / "old.parquet")], ["--ray", "--out", str(out), "--workers", "0"],
               ["--ray", "--out", str(out), "--part-size", "0"])
    for args in refused:
        result = CliRunner().invoke(app, ["predict", str(tiny_run.directory), str(photos / "cat"), *args])
        assert result.exit_code != 0 and isinstance(result.exception, tl.ConfigError), args
