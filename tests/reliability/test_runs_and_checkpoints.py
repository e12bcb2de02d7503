"""Checkpoints damaged on disk, full disks during fine-tuning, and model files from strangers."""

from __future__ import annotations

import errno
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import transferlab as tl
import transferlab._io
from transferlab.models import create_backbone
from transferlab.train import FinetuneConfig, load_checkpoint, load_latest_checkpoint
from transferlab.train.checkpoint import previous_path

from ..conftest import TINY

pytestmark = pytest.mark.reliability

RECIPE = FinetuneConfig(epochs=2, batch_size=8, patience=10, lr=3e-3, warmup_epochs=0)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path) -> tuple[Path, Path, tl.Run]:
    """A 2-epoch fine-tuning run (checkpoint.pt = epoch 2, checkpoint.prev.pt = epoch 1) and its data."""
    from ..conftest import make_photo

    root = tmp_path_factory.mktemp("ft")
    data = root / "photos"
    for c, name in enumerate(["cat", "dog", "fox"]):
        for i in range(8):
            make_photo(data / name / f"{name}_{i}.jpg", c, seed=100 * c + i)
    ds = tl.load_dataset(data, val_frac=0.25, test_frac=0.25)
    run = tl.train(ds, TINY, "finetune", weights=tiny_weights, out=root / "run", precision="fp32", cache_dir=root / "cache", finetune_config=RECIPE, keep_checkpoints=True)
    return data, root / "run", run


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("damage", ["truncated to half", "truncated to 0 bytes", "overwritten with garbage"])
def test_a_damaged_checkpoint_falls_back_to_the_previous_good_one(finetuned, tmp_path: Path, damage: str, reliability) -> None:
    _, run_dir, straight = finetuned
    run = _copy_run(run_dir, tmp_path / "run")
    ckpt = run / "checkpoint.pt"
    assert load_checkpoint(ckpt)["epoch"] == 2 and load_checkpoint(previous_path(ckpt))["epoch"] == 1
    data = ckpt.read_bytes()
    ckpt.write_bytes({"truncated to half": data[: len(data) // 2], "truncated to 0 bytes": b"", "overwritten with garbage": b"\x00junk" * 999}[damage])

    if damage == "truncated to half":  # the whole path once: `resume` continues from epoch 1 to the same result
        resumed = tl.resume(run)
        a, b = resumed.meta["finetune"]["history"], straight.meta["finetune"]["history"]
        assert [r["epoch"] for r in a] == [0, 1, 2]
        assert a[2]["val_loss"] == pytest.approx(b[2]["val_loss"], abs=1e-6) and a[2]["val_accuracy"] == b[2]["val_accuracy"]
        outcome = "detected; `resume` continues from the previous checkpoint (epoch 1) and ends where the undamaged run ended"
    else:
        state, used = load_latest_checkpoint(ckpt)
        assert used == previous_path(ckpt) and state["epoch"] == 1
        outcome = "detected; the previous checkpoint (epoch 1) is used"
    assert (run / "checkpoint.damaged.pt").read_bytes() != data  # kept aside for inspection, never deleted
    outcome += "; the damaged file is kept as checkpoint.damaged.pt"
    reliability("Faults", f"fine-tuning checkpoint {damage}", outcome)


def test_both_checkpoints_damaged_is_a_clear_error(finetuned, tmp_path: Path, reliability) -> None:
    run = _copy_run(finetuned[1], tmp_path / "run")
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (run / name).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(tl.RunError, match="cannot resume: no usable checkpoint") as info:
        tl.resume(run)
    assert "\n" not in str(info.value)
    reliability("Faults", "both checkpoints damaged", f"clear error: \u201c{str(info.value).replace(str(run), 'RUN')}\u201d")


def test_disk_full_while_checkpointing_keeps_the_last_good_checkpoint(finetuned, tmp_path: Path, tiny_weights: Path, monkeypatch, reliability) -> None:
    from transferlab.train.checkpoint import save_checkpoint

    run = _copy_run(finetuned[1], tmp_path / "run")
    before = (run / "checkpoint.pt").read_bytes()

    def full(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)  # noqa: SIM115
        if "w" in mode:
            real = handle.write
            handle.write = lambda data: (real(data[: len(data) // 3]), (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
        return handle

    monkeypatch.setattr(transferlab._io, "open", full, raising=False)
    with pytest.raises(tl.StorageError, match="no space left"):
        save_checkpoint(run / "checkpoint.pt", load_checkpoint(run / "checkpoint.pt"))
    monkeypatch.undo()
    assert (run / "checkpoint.pt").read_bytes() == before and not list(run.glob(".*"))
    reliability("Faults", "disk full while writing a checkpoint (patched writer)", "clear StorageError; the last good checkpoint is untouched; no partial file")


# -- untrusted files -----------------------------------------------------------------------------------
class _Exploit:
    """Unpickling this creates ``target``: what a malicious model file would do (run code on load)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def _evil_pickle(path: Path, target: Path, wrap_in_state_dict: bool = True) -> Path:
    payload = {"conv_stem.weight": torch.zeros(1), "evil": _Exploit(target)} if wrap_in_state_dict else _Exploit(target)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".safetensors"])
def test_a_pickle_that_runs_code_is_refused_as_weights(tmp_path: Path, suffix: str, reliability) -> None:
    target = tmp_path / "pwned"
    evil = _evil_pickle(tmp_path / f"weights{suffix}", target)
    with pytest.raises(tl.BackboneError, match="cannot read weights") as info:
        create_backbone(TINY, weights=evil)
    assert not target.exists(), "the pickle ran code"
    assert "\n" not in str(info.value)
    reliability("Untrusted files", f"--weights {suffix} holding a pickle that creates a file when loaded",
                f"refused, file not created: \u201c{str(info.value).replace(str(evil), evil.name)}\u201d")


def test_a_pickle_that_runs_code_is_refused_as_a_checkpoint(finetuned, tmp_path: Path, reliability) -> None:
    run = _copy_run(finetuned[1], tmp_path / "run")
    target = tmp_path / "pwned"
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        _evil_pickle(run / name, target, wrap_in_state_dict=False)
    with pytest.raises(tl.RunError, match="not a usable checkpoint"):
        tl.resume(run)
    assert not target.exists(), "the pickle ran code"
    reliability("Untrusted files", "checkpoint.pt holding a pickle that creates a file when loaded", "refused by `resume` (weights_only), file not created")


def test_a_run_never_unpickles_anything(finetuned, tmp_path: Path, reliability) -> None:
    run = _copy_run(finetuned[1], tmp_path / "run")
    target = tmp_path / "pwned"
    (run / "model.safetensors").write_bytes(pickle.dumps(_Exploit(target)))
    with pytest.raises(tl.RunError, match="cannot load the model"):
        tl.load(run)
    assert not target.exists()
    reliability("Untrusted files", "a run whose model.safetensors is a code-running pickle", "clear RunError, file not created (runs are safetensors + JSON only)")


@pytest.mark.parametrize(
    "damage,match",
    [
        ("model.json not JSON", "is not valid JSON"),
        ("model.json not an object", "expected format 'transferlab-run'"),
        ("model.json without classes", "lacks the field 'classes'"),
        ("tensors of another architecture", "cannot load the model"),
        ("one class more than the tensors", "cannot load the model"),
        ("model.safetensors truncated", "cannot load the model"),
        ("model.safetensors missing", "has no model.safetensors"),
    ],
)
def test_a_malformed_run_is_a_clear_error(finetuned, tmp_path: Path, damage: str, match: str, reliability) -> None:
    run = _copy_run(finetuned[1], tmp_path / "run")
    meta = json.loads((run / "model.json").read_text())
    weights = run / "model.safetensors"
    if damage == "model.json not JSON":
        (run / "model.json").write_text('{"format": "transferlab-run", "classes": [')
    elif damage == "model.json not an object":
        (run / "model.json").write_text("[1, 2, 3]")
    elif damage == "model.json without classes":
        del meta["classes"]
        (run / "model.json").write_text(json.dumps(meta))
    elif damage == "tensors of another architecture":
        state = load_file(str(weights))
        save_file({k: torch.zeros(*v.shape[:-1], v.shape[-1] + 1) if v.ndim else v for k, v in state.items()}, str(weights))
    elif damage == "one class more than the tensors":
        meta["classes"].append("owl")
        (run / "model.json").write_text(json.dumps(meta))
    elif damage == "model.safetensors truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        weights.unlink()
    with pytest.raises(tl.RunError, match=match) as info:
        tl.load(run)
    assert "\n" not in str(info.value)
    reliability("Untrusted files", f"run with {damage}", f"clear RunError: \u201c…{match}…\u201d")
