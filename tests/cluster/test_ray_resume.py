"""``predict --ray`` killed half way and run again: the parts written before are kept, only the rest is computed.

Real processes: the CLI runs in its own process group (driver, its local Ray instance and replicas), which
is SIGKILLed once the first parts are in the folder; no Ray instance of this test process is running (the
CLI starts its own), so nothing else can keep writing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import transferlab as tl

from ..conftest import REPO, make_photo

pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]'); the Ray tests need it")
pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow comes with ray[data]")

N_FILES, PART_SIZE = 60, 2  # 30 parts: the first appears seconds before the last


def predict_ray(run_dir: Path, photos: Path, out: Path, cache: Path, *extra: str, log: Path | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "transferlab", "predict", str(run_dir), str(photos), "--ray", "--out", str(out), "-k", "2",
               "--part-size", str(PART_SIZE), "--precision", "fp32", "--cache-dir", str(cache), *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    stream = open(log, "w") if log else subprocess.PIPE  # a file: a job that is never read from must not block on a full pipe
    return subprocess.Popen(command, env=env, stdout=stream, stderr=stream, text=True, start_new_session=True)


def parts(out: Path) -> dict[str, tuple[int, int]]:
    """Each part file's name -> (inode, mtime in ns): a part written again gets a new inode (rename) and mtime."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*.parquet")}


def test_a_killed_job_run_again_keeps_the_parts_written_and_computes_only_the_rest(tiny_run_dir: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    files = [make_photo(photos / f"p{i:03d}.jpg", i % 3, seed=i, size=(40, 40)) for i in range(N_FILES)]
    out, cache = tmp_path / "predictions", tmp_path / "cache"
    job = predict_ray(tiny_run_dir, photos, out, cache, "-q", log=tmp_path / "first.log")
    deadline = time.monotonic() + 300
    while not parts(out) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if job.poll() is not None:
        pytest.fail(f"the job ended before it could be killed (exit {job.returncode}): {(tmp_path / 'first.log').read_text()[-2000:]}")
    os.killpg(job.pid, signal.SIGKILL)  # the process group this test started: driver, raylet, replicas
    job.wait()
    time.sleep(2.0)  # a replica Ray started outside the group dies with its raylet: a rename under way may still land
    before = parts(out)
    time.sleep(1.0)
    assert parts(out) == before, "parts were still being written after the job was killed"
    assert 0 < len(before) < N_FILES // PART_SIZE, f"the kill did not land half way ({len(before)} parts written)"
    assert not json.loads((out / "_manifest.json").read_text())["complete"]

    again = predict_ray(tiny_run_dir, photos, out, cache, "--json")
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-2000:]
    summary = json.loads(stdout)
    assert summary["parts_kept"] == len(before) and summary["parts"] == N_FILES // PART_SIZE
    missing = N_FILES - PART_SIZE * len(before)
    assert summary["computed"] + summary["cached"] == missing  # only the parts that were missing
    after = parts(out)
    assert {name: after[name] for name in before} == before  # not written again
    assert json.loads((out / "_manifest.json").read_text())["complete"] and not list(out.glob(".*.tmp"))

    rows = pq.read_table(out).to_pylist()  # what an uninterrupted run writes: predict's answers, one row per file, in order
    assert [r["path"] for r in rows] == [str(f) for f in files]
    plain = tl.open_model(str(tiny_run_dir)).predict(files, 2, cache_dir=tmp_path / "plain-cache", precision="fp32")
    assert [r["label_1"] for r in rows] == [p["top"][0]["label"] for p in plain]
    np.testing.assert_allclose([[r["prob_1"], r["prob_2"]] for r in rows], [[t["prob"] for t in p["top"]] for p in plain], atol=1e-5, rtol=0)
