"""Fine-tuning checkpoints: written atomically, the previous one kept, loaded without unpickling code.

``save_checkpoint`` renames the current file to ``<name>.prev.pt`` before putting the new one in place, so
a checkpoint damaged on disk (truncated by a full disk or a copy, bit rot) still leaves the previous
epoch's to resume from: ``load_latest_checkpoint`` tries the newest first, then the previous one.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write_bytes
from ..errors import RunError

log = logging.getLogger(__name__)

REQUIRED = ("epoch", "model", "optimizer", "scheduler", "torch_rng", "history", "best_epoch", "best_model", "config")


def previous_path(path: Path) -> Path:
    """``checkpoint.pt`` -> ``checkpoint.prev.pt``: the last good checkpoint before ``path``."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically, keeping the checkpoint it replaces as ``previous_path``.

    Raises:
        StorageError: the disk is full (the existing checkpoints are untouched).
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    staged = path.with_name(f".{path.name}.new")
    atomic_write_bytes(staged, buf.getvalue())  # complete and on disk before anything is renamed
    try:
        if path.exists():
            os.replace(path, previous_path(path))
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint without unpickling code (tensors, numbers, strings, lists and dicts only).

    Raises:
        RunError: the file is missing, truncated, not a checkpoint, or holds anything but plain data.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # what weights_only raises for anything but plain data
        raise RunError(f"{path} is not a usable checkpoint (it holds objects that could run code when loaded: refused)") from err
    except OSError as err:
        raise RunError(f"{path} is not a usable checkpoint (cannot read: {err.strerror or err})") from err
    except Exception as err:  # truncated or foreign zip (RuntimeError), EOF...: torch's messages run to paragraphs
        raise RunError(f"{path} is not a usable checkpoint (truncated, or not a PyTorch checkpoint: {type(err).__name__})") from err
    missing = [k for k in REQUIRED if not isinstance(state, dict) or k not in state]
    if missing:
        raise RunError(f"{path} is not a usable checkpoint (no {', '.join(missing)})")
    return state


def load_latest_checkpoint(path: Path) -> tuple[dict[str, Any], Path]:
    """The newest usable checkpoint: ``path``, else the previous one, with the file it came from.

    A damaged newest file is renamed ``<name>.damaged.pt`` (kept for inspection, never deleted) so the
    next save cannot rotate it over the good previous one.

    Raises:
        RunError: neither file is usable (the message gives both reasons).
    """
    reasons = []
    for candidate in (path, previous_path(path)):
        if not candidate.is_file():
            reasons.append(f"{candidate.name}: missing")
            continue
        try:
            state = load_checkpoint(candidate)
        except RunError as err:
            reasons.append(str(err).replace(str(candidate), candidate.name))
            continue
        if candidate != path:
            if path.exists():
                os.replace(path, path.with_name(f"{path.stem}.damaged{path.suffix}"))
            log.warning("%s; resuming from the previous checkpoint %s (epoch %s)", "; ".join(reasons), candidate, state["epoch"])
        return state, candidate
    raise RunError(f"no usable checkpoint in {path.parent} ({'; '.join(reasons)}) — retrain without --resume")

