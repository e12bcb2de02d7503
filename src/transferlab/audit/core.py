"""``audit``: duplicates, likely label errors, outliers and balance of a dataset, from cached features."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write_bytes, display_path
from .._lock import writing
from .._types import Progress
from ..data import Dataset, Sample
from ..features import FeatureCache, cache_key, extract_features, pick_runtime
from ..features.cache import default_cache_dir
from ..models import DEFAULT_BACKBONE, create_backbone
from .config import AuditConfig
from .duplicates import Pair, find_duplicates
from .labels import find_label_issues, low_confidence_issues, neighbour_probabilities, out_of_fold_probabilities, self_confidence
from .neighbours import feature_dtype, nearest, normalise
from .outliers import outlier_scores, robust_z
from .result import AuditResult, Finding

log = logging.getLogger(__name__)
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def audit(
    dataset: Dataset,
    backbone: str = DEFAULT_BACKBONE,
    *,
    weights: Path | str | None = None,
    out: Path | str | None = None,
    config: AuditConfig = AuditConfig(),
    cache_dir: Path | str | None = None,
    precision: str = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> AuditResult:
    """Find exact and near-duplicates (within and across splits), likely label errors and outliers.

    Works on the backbone's cached features (extracting the missing ones); the data is never changed.
    With ``out``, writes ``audit.json``, ``audit.csv`` and ``audit.html`` there; the feature cache also
    keeps a copy of ``audit.json`` per data folder, which ``report`` shows for runs trained on it.

    Raises:
        DataError, BackboneError: problems a user can fix (one-sentence messages).
        BusyError: another process is writing ``out`` at the same moment.
    """
    started = time.perf_counter()
    bb = create_backbone(backbone, weights)
    runtime = pick_runtime(precision=precision)
    cache = FeatureCache(cache_dir, cache_key(bb.model, runtime, bb.model.backbone_fingerprint()))
    cb = (lambda d, t: progress("features", d, t)) if progress else None
    ex = extract_features(bb.model, [s.path for s in dataset.samples], cache=cache, runtime=runtime, batch_size=batch_size, progress=cb,
                          dtype=feature_dtype(len(dataset.samples)))
    samples = [dataset.samples[i] for i in ex.ok]
    hashes = [ex.hashes[i] for i in ex.ok]
    result = audit_features(dataset, samples, hashes, ex.features, config, seed, progress)
    result.backbone = backbone
    result.skipped = [{"path": str(p), "reason": r} for p, r in sorted(ex.failed.items())]
    result.seconds = {"features": round(ex.seconds, 3), **result.seconds, "total": round(time.perf_counter() - started, 3)}
    if out is not None:
        from .page import write_page

        with writing(Path(out), f"the audit folder {out}"):  # two audits into one folder: never a mix of their files
            result.write(out)
            result.files["html"] = write_page(result, Path(out) / "audit.html")
    remember(result, cache_dir)
    return result


def audit_features(
    dataset: Dataset, samples: Sequence[Sample], hashes: Sequence[str | None], features: torch.Tensor,
    config: AuditConfig = AuditConfig(), seed: int = 0, progress: Progress | None = None,
) -> AuditResult:
    """The audit proper, on features already extracted (``samples[i]`` has row i of ``features``).

    Shape:
        features (N, D).
    """
    timing: dict[str, float] = {}
    with _timed(timing, "duplicates"):
        unit = normalise(features, feature_dtype(len(features)))
        near = nearest(unit, unit, max(config.neighbours, config.outlier_k, config.label_neighbours), exclude_self=True)  # (N, k) once, for all
        pairs = find_duplicates([s.path for s in samples], hashes, unit, config, near, rank=[_SPLIT_ORDER[s.split] for s in samples])
    with _timed(timing, "labels"):
        if progress:
            progress("label check", 0, 1)
        check = _check_labels(samples, len(dataset.classes), features, near, config, seed)
        if progress:
            progress("label check", 1, 1)
    with _timed(timing, "outliers"):
        z = robust_z(outlier_scores(unit, config.outlier_k, near))
    names = [dataset.classes[c] for c in check.present]
    findings = _duplicate_findings(pairs, samples, dataset, lambda p: _relative(p, dataset.root))
    findings += _label_findings(check, samples, dataset, names)
    findings += _outlier_findings(z, samples, dataset, config)
    predicted = check.probe.argmax(1)  # balance and accuracy: the probe's own answers
    return AuditResult(
        root=str(dataset.root), backbone="", n_images=len(samples), findings=findings, counts=dataset.counts(),
        confused=_most_confused(check.given, predicted, names), oof_accuracy=round(float((predicted == check.given).mean()), 4),
        thresholds={"candidate_similarity": config.candidate_similarity, "near_duplicate": config.near_duplicate, "outlier_z": config.outlier_z, "folds": config.folds,
                    "label_rule": config.label_rule, "label_fraction": config.label_fraction, "label_neighbours": config.label_neighbours},
        fingerprint=dataset.fingerprint(), seconds=timing,
    )


@contextlib.contextmanager
def _timed(timing: dict[str, float], stage: str) -> Iterator[None]:
    """Record the seconds the block took as ``timing[stage]``."""
    started = time.perf_counter()
    yield
    timing[stage] = round(time.perf_counter() - started, 3)


@dataclass
class _LabelCheck:
    """The label check's view of the images: labels renumbered over the classes present, and its verdicts."""

    present: np.ndarray  # (K,) dataset class indices with at least one readable image (the others get no column)
    given: np.ndarray  # (N,) each image's label as an index into ``present``
    probe: np.ndarray  # (N, K) out-of-fold probabilities of a linear probe
    probs: np.ndarray  # (N, K) the probe's and the nearest neighbours' probabilities, averaged
    issues: np.ndarray  # (N,) bool: a likely label error


def _check_labels(
    samples: Sequence[Sample], n_classes: int, features: torch.Tensor, near: tuple[np.ndarray, np.ndarray], config: AuditConfig, seed: int,
) -> _LabelCheck:
    """Which labels the out-of-fold probe and the nearest images (``near``: ``neighbours.nearest``'s answer)
    disagree with. Shape: features (N, D)."""
    labels = np.array([s.label for s in samples])
    present = np.unique(labels)
    remap = np.full(n_classes, -1)
    remap[present] = np.arange(len(present))
    given = remap[labels]
    probe = out_of_fold_probabilities(features.numpy(), given, len(present), config.folds, seed)
    probs = (probe + neighbour_probabilities(given, near, len(present), config.label_neighbours)) / 2
    issues = low_confidence_issues(given, probs, config.label_fraction) if config.label_rule == "relative" else find_label_issues(given, probs)
    return _LabelCheck(present, given, probe, probs, issues)


def _label_findings(check: _LabelCheck, samples: Sequence[Sample], dataset: Dataset, names: list[str]) -> list[Finding]:
    """One finding per likely label error, the least self-confident first."""
    conf = self_confidence(check.given, check.probs)
    suggested = check.probs.argmax(1)
    findings = []
    for i in sorted(np.flatnonzero(check.issues), key=lambda i: conf[i]):
        s, label, guess = samples[i], dataset.classes[samples[i].label], names[suggested[i]]
        findings.append(Finding("label", str(s.path), s.split, label, round(1.0 - float(conf[i]), 4),
                                f"the out-of-fold probe and the nearest images say {guess} ({check.probs[i, suggested[i]]:.2f}), {conf[i]:.2f} for its label {label}",
                                suggested_label=guess))
    return findings


def _outlier_findings(z: np.ndarray, samples: Sequence[Sample], dataset: Dataset, config: AuditConfig) -> list[Finding]:
    """One finding per image whose robust z-score of neighbour distance is above ``config.outlier_z``, the farthest first."""
    findings = []
    for i in sorted(np.flatnonzero(z > config.outlier_z), key=lambda i: -z[i]):
        s = samples[i]
        findings.append(Finding("outlier", str(s.path), s.split, dataset.classes[s.label], round(float(z[i]), 2),
                                f"far from every other image: {z[i]:.1f} robust standard deviations above the typical distance to its {config.outlier_k} nearest neighbours"))
    return findings


def _most_confused(given: np.ndarray, predicted: np.ndarray, names: list[str], n: int = 10) -> list[dict[str, object]]:
    """The ``n`` most frequent (given, predicted) class pairs that differ."""
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (given, predicted), 1)
    return [{"given": names[a], "predicted": names[b], "count": int(confusion[a, b])}
            for a, b in sorted(zip(*np.nonzero(confusion)), key=lambda ab: -confusion[ab]) if a != b][:n]


def _duplicate_findings(pairs: list[Pair], samples: Sequence[Sample], dataset: Dataset, rel) -> list[Finding]:
    """One finding per pair, on the copy in the later split (else the later path): the one to review."""
    findings = []
    for p in sorted(pairs, key=lambda p: (-p.similarity, p.a, p.b)):
        a, b = samples[p.a], samples[p.b]
        if (_SPLIT_ORDER[b.split], str(b.path)) < (_SPLIT_ORDER[a.split], str(a.path)):
            a, b = b, a
        where = f"{a.split}/{b.split} leakage" if a.split != b.split else f"twice in {a.split}"
        labels = "" if a.label == b.label else f", labelled {dataset.classes[a.label]} there and {dataset.classes[b.label]} here"
        what = "same bytes as" if p.kind == "exact" else f"same photo (pixel agreement {p.similarity:.3f}) as"
        findings.append(Finding(f"{p.kind} duplicate", str(b.path), b.split, dataset.classes[b.label], p.similarity,
                                f"{what} {rel(a.path)} ({where}{labels})", partner=str(a.path), partner_split=a.split, partner_label=dataset.classes[a.label]))
    return findings


def _relative(path: Path, root: Path) -> str:
    try:
        return display_path(path.relative_to(root))
    except ValueError:
        return display_path(path)


# -- the latest audit of each data folder, for ``report`` ----------------------------------------------
def _remembered(root: str, cache_dir: Path | str | None) -> Path:
    digest = hashlib.sha256(str(Path(root).absolute()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / "audits" / f"{digest}.json"


def remember(result: AuditResult, cache_dir: Path | str | None = None) -> Path:
    """Keep ``result`` in the cache as the latest audit of its data folder."""
    path = _remembered(result.root, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(result.to_dict(), ensure_ascii=True).encode())
    return path


def latest_audit(root: Path | str, cache_dir: Path | str | None = None) -> AuditResult | None:
    """The latest audit of the data folder ``root`` kept in the cache, or None."""
    path = _remembered(str(root), cache_dir)
    if not path.is_file():
        return None
    try:
        return AuditResult.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        log.warning("ignoring the unreadable audit %s (%s)", path, err)
        return None
