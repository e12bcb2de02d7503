"""One folder, one run: training into a folder that holds a run replaces it whole (nothing of the old run
stays), two writers of one folder never mix their files (the second fails in one line, naming the first's
pid), a writer that was killed blocks nobody, and a run read while it is replaced is read whole.

Before: ``train --strategy finetune --out X`` then ``train --out X`` left the fine-tune's history.csv and
curves.png beside the probe's model; two trains into X both exit 0; a load during a replace could take
model.json from one run and model.safetensors from the other. The concurrency cases use real processes,
synchronised by marker files (the child says where it is; the test says when it may go on).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import transferlab as tl
from transferlab.errors import BusyError
from transferlab.train import FinetuneConfig

from ..conftest import TINY, make_photo, make_photo_folder
from ..test_cli import cli

SRC = Path(tl.__file__).resolve().parents[1]  # the children import the transferlab this test imported

HOLD = """
import pathlib, sys, time
def hold(*_):  # the first time it is called: say so, then wait for the test's word (bounded: a failed test frees it)
    here, go = pathlib.Path(sys.argv[-1] + ".here"), pathlib.Path(sys.argv[-1] + ".go")
    if here.exists():
        return
    here.touch()
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
"""
TRAIN = HOLD + """
import transferlab as tl
data, weights, out = sys.argv[1:4]
tl.train(tl.load_dataset(data, seed=1), "%s", weights=weights, out=out, precision="fp32", progress=hold)
""" % TINY
READ = HOLD + """
import json
import numpy as np
import transferlab as tl
run_dir, photo, result = sys.argv[1:4]
real = json.loads
def loads(text, *args, **kwargs):  # wait once, right after model.json is parsed and before the weights are read
    value = real(text, *args, **kwargs)
    if isinstance(value, dict) and value.get("format") == "transferlab-run":
        hold()
    return value
json.loads = loads
np.save(result, tl.load(run_dir).predict_proba([photo], precision="fp32"))
"""
AUDIT = HOLD + """
import importlib
import transferlab as tl
page = importlib.import_module("transferlab.audit.page")  # (tl.audit is the function)
data, weights, out = sys.argv[1:4]
real = page.write_page
def write_page(*args, **kwargs):  # audit.json and audit.csv are written: wait before the page
    hold()
    return real(*args, **kwargs)
page.write_page = write_page
tl.audit(tl.load_dataset(data), "%s", weights=weights, out=out, precision="fp32")
""" % TINY


def _start(script: str, *args: object) -> tuple[subprocess.Popen, Path]:
    """The script in a new process; returns it with its marker stem, once it says it is waiting there."""
    marker = Path(str(args[-1]) + ".marker")
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args), str(marker)], env=env, stderr=subprocess.PIPE)
    here, deadline = Path(f"{marker}.here"), time.monotonic() + 120
    while not here.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the child's own sign, not guessing its speed
    assert here.exists(), f"the child never got there (exit {proc.poll()}): {proc.stderr.read().decode()[-2000:] if proc.poll() is not None else ''}"
    return proc, marker


def _go(proc: subprocess.Popen, marker: Path) -> int:
    Path(f"{marker}.go").touch()
    code = proc.wait(timeout=120)
    assert code == 0, proc.stderr.read().decode()[-2000:]
    return code


def _train(data: Path, weights: Path, out: Path, split_seed: int = 0, **settings) -> tl.Run:
    return tl.train(tl.load_dataset(data, seed=split_seed), TINY, weights=weights, out=out, precision="fp32", **settings)


def _split_seed(run_dir: Path) -> int:
    return tl.load(run_dir).record.data.split_options["seed"]


def _probs(run_dir: Path, photo: Path) -> np.ndarray:
    return tl.load(run_dir).predict_proba([photo], precision="fp32")


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_photo_folder(tmp_path / "photos", per_class=6)


def test_a_probe_trained_over_a_finetune_leaves_nothing_of_it(data: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    _train(data, tiny_weights, out, strategy="finetune", finetune_config=FinetuneConfig(epochs=1, batch_size=8, warmup_epochs=0))
    (out / "eval-photos").mkdir()  # what `evaluate` adds later: it describes the old model too
    (out / "eval-photos" / "metrics.json").write_text("{}")
    assert (out / "history.csv").is_file() and (out / "curves.png").is_file()
    run = _train(data, tiny_weights, out)
    assert run.directory == out
    assert not (out / "history.csv").exists() and not (out / "curves.png").exists() and not (out / "eval-photos").exists()
    assert tl.load(out).record.strategy == "probe" and (out / "digests.json").is_file()
    assert _leftovers(out) == []  # no staging folder, no lock file


def test_a_folder_of_other_files_is_never_emptied(data: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _train(data, tiny_weights, out)
    assert (out / "notes.txt").read_text() == "mine" and tl.load(out).classes == ["cat", "dog", "fox"]


def test_a_failed_training_leaves_the_old_run_as_it_was(data: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    _train(data, tiny_weights, out)
    photo = next(data.rglob("*.jpg"))
    before = _probs(out, photo)

    def fail(stage: str, done: int, total: int) -> None:
        if stage == "head":
            raise RuntimeError("stopped")

    with pytest.raises(RuntimeError, match="stopped"):
        _train(data, tiny_weights, out, split_seed=1, progress=fail)
    np.testing.assert_array_equal(_probs(out, photo), before)
    assert _leftovers(out) == []


def test_two_trains_into_one_folder_the_second_fails_in_one_line(capsys, monkeypatch, data: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first, marker = _start(TRAIN, data, tiny_weights, out)  # holds the folder, mid-training
    code, _, err = cli(capsys, monkeypatch, "train", data, "--backbone", TINY, "--weights", tiny_weights, "--out", out, "--precision", "fp32")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert "another transferlab process is writing" in lines[0] and f"pid {first.pid}" in lines[0]
    _go(first, marker)
    assert _split_seed(out) == 1  # the first one's run, whole
    assert _leftovers(out) == []


def test_a_killed_writer_leaves_the_old_run_whole_and_blocks_nobody(data: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    _train(data, tiny_weights, out)
    photo = next(data.rglob("*.jpg"))
    before = _probs(out, photo)
    proc, _ = _start(TRAIN, data, tiny_weights, out)  # replacing it: writes beside it, holds the lock
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    np.testing.assert_array_equal(_probs(out, photo), before)  # the old run, untouched
    _train(data, tiny_weights, out, split_seed=2)  # the dead process's lock and staging folder block nothing
    assert _split_seed(out) == 2
    assert _leftovers(out) == []


def test_a_run_replaced_while_it_is_loaded_is_read_whole(data: Path, tiny_weights: Path, tmp_path: Path) -> None:
    """What `serve` (which loads its run once, at start) and `predict` see when `train` replaces the run."""
    out = tmp_path / "demo"
    photo = make_photo(tmp_path / "between.jpg", hue=5, seed=999)  # no class's colour: probabilities far from 0 and 1
    _train(data, tiny_weights, out)
    old = _probs(out, photo)
    result = tmp_path / "probs.npy"
    reader, marker = _start(READ, out, photo, result)  # has read model.json, not yet the weights
    _train(data, tiny_weights, out, split_seed=1)
    new = _probs(out, photo)
    assert not np.allclose(old, new, rtol=1e-3)
    _go(reader, marker)
    got = np.load(result)  # (summed in another process, at another thread count: equal up to rounding)
    assert np.allclose(got, new, rtol=1e-4) or np.allclose(got, old, rtol=1e-4), f"a mix of two runs: {got} is neither {old} nor {new}"


def test_two_audits_into_one_folder_never_mix(data: Path, tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    first, marker = _start(AUDIT, data, tiny_weights, out)  # has written audit.json and audit.csv, not the page
    with pytest.raises(BusyError, match=f"pid {first.pid}") as info:
        tl.audit(tl.load_dataset(data), TINY, weights=tiny_weights, out=out, precision="fp32", cache_dir=tmp_path / "cache")
    assert "\n" not in str(info.value)
    _go(first, marker)
    assert sorted(p.name for p in out.iterdir()) == ["audit.csv", "audit.html", "audit.json"]
