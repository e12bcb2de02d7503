"""Run directories on disk: ``model.safetensors`` (tensors) + ``model.json`` (everything else).

Nothing is ever unpickled, so a run from anyone can be loaded safely, on any machine, offline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import RunError
from .._io import atomic_write_bytes
from .backbones import state_dict_mismatch
from .classifier import ImageClassifier
from .combined import CombinedNet
from .preprocess import Preprocess

FORMAT = "transferlab-run"
FORMAT_VERSION = 2  # 2: may hold a ``network`` (several backbones, or multi-stage features); 1 otherwise
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def save_model(directory: Path, model: ImageClassifier, meta: dict[str, Any]) -> None:
    """Write weights and metadata; each file is replaced atomically."""
    from safetensors.torch import save

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}
    atomic_write_bytes(directory / WEIGHTS_FILE, save(state))
    combined = isinstance(model.net, CombinedNet)
    meta = {"format": FORMAT, "format_version": 2 if combined else 1, **meta}  # version 1 readers can load the rest
    meta.update(classes=model.classes, preprocess=model.preprocess.to_dict())
    if combined:
        meta["network"] = model.net.describe()
    else:
        meta.pop("network", None)
    write_json(directory / META_FILE, meta)


def read_meta(directory: Path) -> dict[str, Any]:
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise RunError(f"{str(directory)!r} is not a transferlab run (no {META_FILE}) — pass a folder written by `transferlab train`")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"{meta_path} is not valid JSON ({err}) — the run is damaged; retrain it") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RunError(f"expected format {FORMAT!r} in {meta_path}, got {meta.get('format') if isinstance(meta, dict) else meta!r}")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise RunError(f"{meta_path} has format version {meta['format_version']}, newer than this transferlab reads — upgrade transferlab")
    for key in ("classes", "preprocess", "backbone"):
        if key not in meta:
            raise RunError(f"{meta_path} lacks the field {key!r} — the run is damaged; retrain it")
    return meta


def load_model(directory: Path | str) -> tuple[ImageClassifier, dict[str, Any]]:
    """Rebuild the classifier of a run directory (no network, no pickle)."""
    import timm
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    directory = Path(directory)
    meta = read_meta(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise RunError(f"{str(directory)!r} has no {WEIGHTS_FILE} — the run is incomplete; retrain it")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:  # not safetensors (a pickle?), truncated, unreadable
        raise RunError(f"cannot load the model in {str(directory)!r}: {WEIGHTS_FILE} is not a whole safetensors file ({_first_line(err)}) — the run is damaged; retrain it") from err
    try:
        arch = meta["backbone"]["arch"]
        if "network" in meta:
            net = CombinedNet.from_description(meta["network"], len(meta["classes"]))
        else:
            net = timm.create_model(arch, pretrained=False, num_classes=len(meta["classes"]))
        preprocess = Preprocess.from_dict(meta["preprocess"])
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise RunError(f"cannot load the model in {str(directory)!r}: {META_FILE} is inconsistent ({type(err).__name__}: {_first_line(err)}) — the run is damaged; retrain it") from err
    missing, unexpected, wrong = state_dict_mismatch(net, state)
    if missing or unexpected or wrong:
        raise RunError(
            f"cannot load the model in {str(directory)!r}: its tensors do not fit {arch} with {len(meta['classes'])} classes "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrongly shaped, e.g. {(wrong + missing + unexpected)[0]}) "
            "— model.json and model.safetensors come from different runs, or the run is damaged; retrain it"
        )
    net.load_state_dict(state)
    return ImageClassifier(net.eval(), preprocess, meta["classes"]), meta


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
