"""The run folder on disk, and the only code that reads or writes one: ``model.safetensors`` (the network's
tensors), ``model.json`` (the record, classes and preprocessing) and, for a kNN or Mahalanobis "none of these"
score, ``confidence.safetensors``. Nothing is ever unpickled, so a run from anyone loads safely, offline.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, write_json
from ..errors import RunError
from ..models.classifier import ImageClassifier
from ..models.confidence import TENSORS_FILE, Confidence
from ..models.saving import build_classifier, describe_network, network_state
from .record import RunRecord

FORMAT = "transferlab-run"
FORMAT_VERSION = 2  # 2: may hold a ``network`` (several backbones, or multi-stage features); 1 otherwise
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"


def read_meta(directory: Path | str) -> dict[str, Any]:
    """``model.json`` of a run folder, checked to be one this version reads.

    Raises:
        RunError: not a run folder, damaged, or written by a newer transferlab.
    """
    meta_path = Path(directory) / META_FILE
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


def read_run(directory: Path | str) -> tuple[ImageClassifier, RunRecord, Confidence]:
    """The classifier, record and confidence of a run folder (no network, no pickle)."""
    directory = Path(directory)
    meta = read_meta(directory)
    record = RunRecord.from_dict(meta)
    model = build_classifier(record.backbone.arch, meta["classes"], meta["preprocess"], _read_tensors(directory / WEIGHTS_FILE, "the model"), meta.get("network"), repr(str(directory)))
    return model, record, _read_confidence(directory, record)


def write_run(directory: Path | str, model: ImageClassifier, record: RunRecord, confidence: Confidence) -> Path:
    """Write the run's files into ``directory``, each replaced atomically; a confidence file the run no longer
    needs is removed."""
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(directory / WEIGHTS_FILE, save(network_state(model)))
    described = describe_network(model)
    meta = {"format": FORMAT, "format_version": 2 if "network" in described else 1, **record.to_dict(), **described}  # version 1 readers can load the rest
    write_json(directory / META_FILE, meta)
    (directory / TENSORS_FILE).unlink(missing_ok=True)
    if confidence.tensors:
        atomic_write_bytes(directory / TENSORS_FILE, save({k: v.contiguous() for k, v in confidence.tensors.items()}))
    return directory


def _read_confidence(directory: Path, record: RunRecord) -> Confidence:
    tensors = directory / TENSORS_FILE
    if record.confidence and tensors.is_file():
        return Confidence.from_record(record.confidence, _read_tensors(tensors, "the 'none of these' score"))
    if (record.confidence or {}).get("method") in ("knn", "mahalanobis"):
        raise RunError(f"{str(directory)!r} lacks {TENSORS_FILE}, which its 'none of these' score needs — copy the whole run folder, or calibrate it again (`transferlab calibrate RUN DATA`)")
    return Confidence.from_record(record.confidence)


def _read_tensors(path: Path, what: str) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise RunError(f"{str(path.parent)!r} has no {path.name} — the run is incomplete; retrain it")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:  # not safetensors (a pickle?), truncated, unreadable
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise RunError(f"cannot load {what} in {str(path.parent)!r}: {path.name} is not a whole safetensors file ({first}) — the run is damaged; retrain it") from err
