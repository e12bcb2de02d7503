"""A feature extraction killed mid-way (SIGKILL, no clean-up) loses nothing it had written."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from transferlab.features import FeatureCache, cache_key, extract_features, pick_runtime
from transferlab.models import create_backbone

from ..conftest import TINY, make_photo

SCRIPT = """
import sys, time
from pathlib import Path
from transferlab.features import FeatureCache, cache_key, extract_features, pick_runtime
from transferlab.models import create_backbone
model = create_backbone(sys.argv[1], weights=sys.argv[2]).model
runtime = pick_runtime(precision="fp32")
cache = FeatureCache(sys.argv[3], cache_key(model, runtime))
paths = sorted(Path(sys.argv[4]).glob("*.jpg"))
def stop_midway(done, total):
    if done >= 8:  # two batches of 4 are in the cache: say so, then wait to be killed right here
        Path(sys.argv[5]).touch()
        time.sleep(300)  # (bounded: outlives a test that failed to kill it by minutes, not forever)
extract_features(model, paths, cache=cache, runtime=runtime, batch_size=4, progress=stop_midway)
"""


def test_killed_extraction_keeps_written_shards_and_resumes(tmp_path: Path, tiny_weights: Path) -> None:
    images = tmp_path / "images"
    paths = [make_photo(images / f"{i:03d}.jpg", i % 3, seed=i) for i in range(40)]
    cache_root = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    marker = tmp_path / "two-batches-written"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, TINY, str(tiny_weights), str(cache_root), str(images), str(marker)], env=env)
    model = create_backbone(TINY, weights=tiny_weights).model
    runtime = pick_runtime(precision="fp32")
    cache = FeatureCache(cache_root, cache_key(model, runtime))
    deadline = time.monotonic() + 300  # generous: the child says when it is mid-way, no guess at its speed
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert marker.exists(), "the child never reached the middle of the extraction"
    written = len(cache)
    assert written == 8, "the two batches written before the kill are all in the cache"

    resumed = extract_features(model, paths, cache=cache, runtime=runtime)
    assert resumed.computed == len(paths) - written  # nothing already written is recomputed
    fresh = extract_features(model, paths, runtime=runtime)  # no cache at all
    assert torch.allclose(resumed.features, fresh.features, atol=1e-5)
