"""The feature cache under faults: killed writers, damaged shards, a full disk, two writers at once."""

from __future__ import annotations

import errno
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import transferlab as tl
import transferlab._io
from transferlab.features import FeatureCache, cache_key, extract_features, pick_runtime
from transferlab.models import create_backbone

from ..conftest import TINY, make_photo
from .conftest import env_with_src

pytestmark = pytest.mark.reliability

EXTRACT = """
import sys, time
from pathlib import Path
import transferlab.features.cache as cache_module
from transferlab.features import FeatureCache, cache_key, extract_features, pick_runtime
from transferlab.models import create_backbone
model = create_backbone(sys.argv[1], weights=sys.argv[2]).model
runtime = pick_runtime(precision="fp32")
cache_module.COMPACT_AFTER = int(sys.argv[6])  # small: compactions race with the other process's writes
cache = FeatureCache(sys.argv[3], cache_key(model, runtime))
paths = sorted(Path(sys.argv[4]).glob("*.jpg"))
pause, hold, start = float(sys.argv[7]), int(sys.argv[8]), len(cache)
def progress(done, total):
    time.sleep(pause)
    if hold and len(cache) - start >= hold:  # this process's share is written: wait to be killed
        time.sleep(300)  # (bounded: outlives a test that failed to kill it by minutes, not forever)
ex = extract_features(model, paths, cache=cache, runtime=runtime, batch_size=4, workers=1, progress=progress)
if sys.argv[5] != "-":
    from safetensors.torch import save_file
    save_file({"features": ex.features.contiguous()}, sys.argv[5])
"""


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    return [make_photo(tmp_path / "images" / f"{i:03d}.jpg", i % 3, seed=i) for i in range(80)]


@pytest.fixture
def model(tiny_weights: Path):
    return create_backbone(TINY, weights=tiny_weights).model


def _start(tiny_weights: Path, cache_root: Path, images: Path, out: str = "-", compact_after: int = 64, pause: float = 0.05, hold: int = 0) -> subprocess.Popen:
    """The extraction in a subprocess; ``hold`` > 0: it stops and waits (to be killed) once it has added that many entries."""
    args = [TINY, str(tiny_weights), str(cache_root), str(images), out, str(compact_after), str(pause), str(hold)]
    return subprocess.Popen([sys.executable, "-c", EXTRACT, *args], env=env_with_src(), stderr=subprocess.PIPE)


def _shards_are_whole(cache: FeatureCache) -> int:
    """Every shard under a real name opens and has one row per hash; returns the number of entries."""
    rows = 0
    for shard in cache.dir.glob("*.safetensors"):
        if shard.name.startswith("."):
            continue  # a temporary file of a killed writer: never read (the next test checks that)
        with safe_open(str(shard), framework="pt") as f:
            hashes = json.loads(f.metadata()["hashes"])
            assert f.get_tensor("features").shape[0] == len(hashes)
        rows += len(hashes)
    return rows


def test_sigkill_at_random_points_loses_nothing_and_nothing_half_written_is_read(tmp_path, images, model, tiny_weights, reliability) -> None:
    cache_root = tmp_path / "cache"
    runtime = pick_runtime(precision="fp32")
    cache = FeatureCache(cache_root, cache_key(model, runtime))
    rng = random.Random(6)  # the kill points are random, but the same on every run of the suite
    kills, entries = [], [0]
    for attempt in range(4):
        # Each child adds at most 12 entries, then waits: four kills never reach the 80th, however slow this process is.
        proc = _start(tiny_weights, cache_root, images[0].parent, pause=0.15, hold=12)
        # Wait for the child to start working (its first new shard; generous: it says so, no guess at its speed),
        # then a random delay.
        start_count, deadline = len(cache), time.monotonic() + 300
        while len(cache) == start_count and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(cache) > start_count, f"the extraction never wrote a shard (exit code {proc.poll()})"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills.append(len(cache))
        assert _shards_are_whole(cache) >= len(cache)
        assert len(cache) >= entries[-1], "an entry written before a kill disappeared"
        entries.append(len(cache))
    written = len(cache)
    assert 0 < written < len(images), f"the kills should land mid-extraction (cache had {kills})"

    resumed = extract_features(model, images, cache=cache, runtime=runtime)
    assert resumed.computed == len(images) - written  # every entry already written is reused
    fresh = extract_features(model, images, runtime=runtime)
    assert torch.allclose(resumed.features, fresh.features, atol=1e-5)
    reliability("Faults", "SIGKILL during feature extraction (real subprocess, random points)",
                f"entries after each kill {kills}: never fewer, every shard whole; the rerun reused all {written} and computed the other "
                f"{len(images) - written}; features equal a fresh extraction", cases=len(kills))


def test_a_damaged_shard_or_stray_temporary_file_is_never_read(tmp_path, images, model, reliability) -> None:
    runtime = pick_runtime(precision="fp32")
    cache = FeatureCache(tmp_path / "cache", cache_key(model, runtime))
    first = extract_features(model, images[:8], cache=cache, runtime=runtime, batch_size=4)
    shards = sorted(cache.dir.glob("*.safetensors"))
    data = shards[0].read_bytes()
    shards[0].write_bytes(data[: len(data) // 2])  # as if a non-atomic writer had died mid-write
    (cache.dir / f".{shards[1].name}.0123.tmp").write_bytes(data[:100])  # a killed writer's temporary file
    again = extract_features(model, images[:8], cache=cache, runtime=runtime, batch_size=4)
    assert again.computed == 4  # the damaged shard's 4 entries are recomputed, the whole one reused
    assert torch.allclose(again.features, first.features, atol=1e-5)
    reliability("Faults", "cache shard truncated on disk; stray temporary file",
                "damaged shard ignored (logged) and its 4 entries recomputed; the temporary file never opened; features identical", cases=2)


class _FullDisk:
    """Stands in for ``open`` in ``transferlab._io``: files write half their bytes, then ENOSPC."""

    def __init__(self, after: int = 0) -> None:
        self.after = after  # writes allowed to succeed first
        self.calls = 0

    def __call__(self, path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)  # noqa: SIM115 (closed by the caller's with-block)
        self.calls += 1
        if self.calls <= self.after or "w" not in mode:
            return handle
        real_write = handle.write

        def write(data: bytes) -> int:
            real_write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        handle.write = write
        return handle


def _no_partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_disk_full_while_writing_the_cache_is_a_clear_error_with_nothing_corrupt(tmp_path, images, model, monkeypatch, reliability) -> None:
    runtime = pick_runtime(precision="fp32")
    cache = FeatureCache(tmp_path / "cache", cache_key(model, runtime))
    monkeypatch.setattr(transferlab._io, "open", _FullDisk(after=2), raising=False)  # two shards fit, the third does not
    with pytest.raises(tl.StorageError) as info:
        extract_features(model, images[:16], cache=cache, runtime=runtime, batch_size=4, workers=1)
    monkeypatch.undo()
    assert "no space left" in str(info.value) and "\n" not in str(info.value)
    assert not _no_partial_files(cache.dir) and _shards_are_whole(cache) == len(cache) == 8
    again = extract_features(model, images[:16], cache=cache, runtime=runtime)
    assert again.computed == 8  # the two whole shards are kept and reused
    reliability("Faults", "disk full while writing the cache (patched writer: half written, then ENOSPC)",
                f"clear error: \u201c{str(info.value).replace(str(cache.dir), 'CACHE')}\u201d; no partial file; earlier shards reused")


def test_disk_full_while_saving_a_run_leaves_no_run_that_looks_whole(tmp_path, photo_folder, tiny_weights, monkeypatch, reliability) -> None:
    ds = tl.load_dataset(photo_folder)
    run = tl.train(ds, TINY, weights=tiny_weights, precision="fp32", cache_dir=tmp_path / "cache")
    monkeypatch.setattr(transferlab._io, "open", _FullDisk(), raising=False)
    with pytest.raises(tl.StorageError):
        run.save(tmp_path / "run")
    monkeypatch.undo()
    assert not _no_partial_files(tmp_path / "run") and not (tmp_path / "run" / "model.json").exists()
    with pytest.raises(tl.RunError, match="not a transferlab run"):
        tl.load(tmp_path / "run")
    run.save(tmp_path / "run")  # space freed: saving again works
    assert tl.load(tmp_path / "run").classes == run.classes
    reliability("Faults", "disk full while saving a run (patched writer)",
                "clear StorageError; no partial file and no model.json, so loading says \u201cnot a transferlab run\u201d; saving again works")


def _tmpfs_available() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


VERIFY = """
import json, sys
from pathlib import Path
from safetensors import safe_open
shards, temporary = 0, []
for p in Path(sys.argv[1]).rglob("*"):
    if p.name.endswith(".tmp"):
        temporary.append(p.name)
    elif p.suffix == ".safetensors":
        with safe_open(str(p), framework="pt") as f:
            assert f.get_tensor("features").shape[0] == len(json.loads(f.metadata()["hashes"]))
        shards += 1
print(json.dumps({"shards": shards, "temporary": temporary}))
"""


@pytest.mark.skipif(not _tmpfs_available(), reason="no user namespaces here to mount a small tmpfs")
def test_real_full_disk_during_train_is_a_one_line_error(tmp_path, photo_folder, tiny_weights, reliability) -> None:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    train = [sys.executable, "-m", "transferlab", "train", str(photo_folder), "-b", TINY, "--weights", str(tiny_weights),
             "--out", str(tmp_path / "run"), "--fp32", "-q", "--batch-size", "4", "--cache-dir", str(mount)]
    script = f"mount -t tmpfs -o size=24k tmpfs {mount} && {{ {' '.join(map(_quote, train))}; echo \"rc=$?\"; }} && {sys.executable} -c {_quote(VERIFY)} {mount}"
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], capture_output=True, env=env_with_src(), timeout=300)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert "rc=1" in out, (out, err[-2000:])
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "no space left" in error_lines[0] and "Traceback" not in err
    found = json.loads(out.splitlines()[-1])
    assert found["temporary"] == []  # every shard left is whole (VERIFY opened each one)
    reliability("Faults", "disk full while writing the cache (real 24 kB tmpfs, `transferlab train`)",
                f"exit 1 with one line \u201c{error_lines[0].replace(str(mount), 'MOUNT')}\u201d; {found['shards']} whole shard(s) left, no partial file")


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


TRAIN = """
import sys
import transferlab as tl
import transferlab.features.cache as cache_module
from safetensors.torch import save_file
from transferlab.features import FeatureCache, cache_key, extract_features, pick_runtime
cache_module.COMPACT_AFTER = 3  # compactions race with the other process's writes and reads
data, weights, cache_dir, out, features = sys.argv[1:6]
run = tl.train(tl.load_dataset(data), "%s", weights=weights, out=out, precision="fp32", batch_size=4, cache_dir=cache_dir)
runtime = pick_runtime(precision="fp32")
ds = tl.load_dataset(data)
ex = extract_features(run.model, [s.path for s in ds.samples], cache=FeatureCache(cache_dir, cache_key(run.model, runtime, run.meta["backbone"]["fingerprint"])), runtime=runtime)
save_file({"features": ex.features.contiguous()}, features)
""" % TINY


def test_two_train_processes_sharing_one_cache_both_get_correct_features(tmp_path, photo_folder, model, tiny_weights, reliability) -> None:
    shared = tmp_path / "shared-cache"
    runs = [tmp_path / f"run-{i}" for i in range(2)]
    feats = [tmp_path / f"features-{i}.safetensors" for i in range(2)]
    procs = [
        subprocess.Popen([sys.executable, "-c", TRAIN, str(photo_folder), str(tiny_weights), str(shared), str(run), str(out)], env=env_with_src(), stderr=subprocess.PIPE)
        for run, out in zip(runs, feats)
    ]
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0, 0], [p.stderr.read().decode()[-2000:] for p in procs]
    ds = tl.load_dataset(photo_folder)
    fresh = extract_features(model, [s.path for s in ds.samples], runtime=pick_runtime(precision="fp32"))  # no cache at all
    for out in feats:
        assert torch.allclose(load_file(str(out))["features"], fresh.features, atol=1e-5)
    heads = [tl.load(run).model.head.weight for run in runs]
    assert torch.allclose(heads[0], heads[1], atol=1e-4)  # same data, same seed, same features: the same head
    reliability("Faults", "two `train` processes sharing one cache at once (compaction forced every 3 shards)",
                "both finish; the features each reads back equal a fresh extraction without cache; both runs' heads identical", cases=2)
