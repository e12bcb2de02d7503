"""Runs and feature caches prove they are intact: a byte changed on disk after they were written is caught
and named (a run: one-line error; a cache shard: dropped with a warning and computed again), never
answered from silently. Before digests, a flipped byte in the middle of ``model.safetensors`` or of a
cache shard loaded without a word and changed the predictions."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

import transferlab as tl
from transferlab.errors import DamagedRunError, RunError
from transferlab.features import FeatureCache, cache_key, extract_features, pick_runtime

from ..conftest import TINY, make_photo_folder
from ..test_cli import cli

KEY = {"weights": "abc", "arch": "x", "preprocess": "p", "precision": "fp32", "version": "features-v1"}


def _flip_middle_byte(path: Path) -> None:
    """One bit of one byte in the middle of the file: for a safetensors file, inside the tensor data, so the
    file still parses (what a bad sector or a faulty copy does)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2 + 3] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.fixture
def run_copy(tiny_run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_run_dir, tmp_path / "run"))


def test_a_run_records_the_digest_of_every_file_it_loads_from(run_copy: Path) -> None:
    digests = json.loads((run_copy / "digests.json").read_text())
    assert set(digests["files"]) == {"model.safetensors", "model.json", "confidence.safetensors"}
    assert json.loads((run_copy / "model.json").read_text())["digests"] == "digests.json"
    tl.load(run_copy)  # intact: loads


@pytest.mark.parametrize("name", ["model.safetensors", "confidence.safetensors"])
def test_a_flipped_byte_in_a_run_file_is_a_one_line_error_naming_it(run_copy: Path, name: str) -> None:
    _flip_middle_byte(run_copy / name)
    with pytest.raises(DamagedRunError) as info:
        tl.load(run_copy)
    message = str(info.value)
    assert name in message and "\n" not in message and "retrain" in message and "restore" in message


def test_a_changed_number_in_model_json_is_caught(run_copy: Path) -> None:
    meta = run_copy / "model.json"
    text = meta.read_text()
    temperature = json.loads(text)["confidence"]["temperature"]
    meta.write_text(text.replace(repr(temperature), repr(round(temperature * 2, 6)), 1))  # still valid JSON, another temperature
    with pytest.raises(DamagedRunError, match="model.json"):
        tl.load(run_copy)


def test_a_run_whose_digests_went_missing_is_incomplete(run_copy: Path) -> None:
    (run_copy / "digests.json").unlink()
    with pytest.raises(RunError, match="incomplete"):
        tl.load(run_copy)


def test_the_cli_says_which_file_is_damaged_in_one_line(capsys, monkeypatch, run_copy: Path, tmp_path: Path) -> None:
    _flip_middle_byte(run_copy / "model.safetensors")
    photo = next(make_photo_folder(tmp_path / "photos", per_class=1).rglob("*.jpg"))
    code, out, err = cli(capsys, monkeypatch, "predict", run_copy, photo)
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "model.safetensors" in lines[0], err


def test_saving_over_a_run_keeps_its_other_files_and_stays_verifiable(run_copy: Path) -> None:
    """``calibrate`` and a stored threshold save over a run: the new record gets new digests, the
    evaluation files beside it stay."""
    from transferlab.run.record import ServeSettings

    run = tl.load(run_copy)
    run.record.serve = ServeSettings(unsure_below=0.3)
    run.save(run_copy)
    assert (run_copy / "metrics.json").is_file() and (run_copy / "predictions.csv").is_file()
    assert not list(run_copy.parent.glob(".run.*"))  # no staging folder or lock left beside it
    assert tl.load(run_copy).record.serve.unsure_below == 0.3


# -- the feature cache ----------------------------------------------------------------------------------
def test_a_flipped_byte_in_a_cache_shard_is_dropped_and_never_served(tmp_path: Path, caplog) -> None:
    cache = FeatureCache(tmp_path, KEY)
    feats = torch.randn(200, 64)
    cache.put([f"h{i}" for i in range(200)], feats)
    (shard,) = cache.dir.glob("*.safetensors")
    _flip_middle_byte(shard)
    with caplog.at_level(logging.WARNING, logger="transferlab.features.cache"):
        got = FeatureCache(tmp_path, KEY).get([f"h{i}" for i in range(200)])
    assert got == {}  # not one row of the damaged shard
    assert not shard.exists()  # dropped: the next run does not meet it again
    assert any("damaged" in r.getMessage() and shard.name in r.getMessage() for r in caplog.records)


def test_a_damaged_shard_is_recomputed_by_the_next_extraction(tmp_path: Path, tiny_weights: Path) -> None:
    from transferlab.models import create_backbone

    model = create_backbone(TINY, weights=tiny_weights).model
    runtime = pick_runtime(precision="fp32")
    paths = sorted(make_photo_folder(tmp_path / "photos", per_class=4).rglob("*.jpg"))
    cache = FeatureCache(tmp_path / "cache", cache_key(model, runtime))
    first = extract_features(model, paths, cache=cache, runtime=runtime)
    for shard in cache.dir.glob("*.safetensors"):
        _flip_middle_byte(shard)
    again = extract_features(model, paths, cache=FeatureCache(tmp_path / "cache", cache_key(model, runtime)), runtime=runtime)
    assert again.computed == len(paths)  # nothing served from the damaged shards
    assert torch.allclose(again.features, first.features, atol=1e-6)


def test_a_shard_written_before_digests_is_still_used(tmp_path: Path) -> None:
    """Caches from earlier versions are trusted as they were: checking them would mean recomputing them all."""
    cache = FeatureCache(tmp_path, KEY)
    feats = torch.randn(3, 8)
    (cache.dir / "old.safetensors").write_bytes(save({"features": feats}, metadata={"hashes": json.dumps(["a", "b", "c"])}))
    got = FeatureCache(tmp_path, KEY).get(["a", "c"])
    assert torch.equal(got["a"], feats[0]) and torch.equal(got["c"], feats[2])
