"""A trained run: load it back, evaluate and predict with it (``training.train`` makes one)."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._types import Progress
from . import __version__
from ._io import atomic_write_bytes
from .data import Dataset, Sample, open_rgb
from .errors import DataError, RunError
from .features import FeatureCache, cache_key, extract_features, pick_runtime
from .features.runtime import Runtime
from .models import DEFAULT_BACKBONE, ImageClassifier, create_backbone, load_model, resolve_class, save_model, write_json
from .models.record import RunRecord, short_hash

log = logging.getLogger(__name__)



@dataclass
class Evaluation:
    """Metrics of a run on one split of a dataset, and the files written for it."""

    report: dict[str, Any]
    paths: list[Path]
    y_true: np.ndarray  # (N,) indices into the run's classes
    probs: np.ndarray  # (N, C)
    failed: dict[Path, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # name -> written file

    @property
    def accuracy(self) -> float:
        return float(self.report["accuracy"])


class Run:
    """A trained classifier with its metadata; what ``train`` returns and ``load`` reads.

    Attributes:
        model: the network (pixels in [0, 1] -> logits over ``classes``).
        record: everything recorded about how it was made (backbone, data, phases, metrics...).
        directory: where it is saved, if it is.
    """

    def __init__(self, model: ImageClassifier, record: RunRecord | dict[str, Any], directory: Path | None = None) -> None:
        self.model = model
        self.record = record if isinstance(record, RunRecord) else RunRecord.from_dict(record)
        self.directory = directory

    @property
    def meta(self) -> dict[str, Any]:
        """The record as the plain dict ``model.json`` holds (a fresh copy: change ``record`` instead)."""
        return self.record.to_dict()

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def __repr__(self) -> str:
        where = f", directory={str(self.directory)!r}" if self.directory else ""
        return f"Run(backbone={self.record.backbone.get('name')!r}, classes={len(self.classes)}{where})"

    def class_index(self, name: str | int) -> int:
        """Index of a class given by exact or fuzzy name ("siamese" -> "Siamese cat") or by number."""
        return resolve_class(self.classes, name)

    def load_image(self, path: Path | str) -> torch.Tensor:
        """A photo as the model sees it at evaluation: resized, centre-cropped, in [0, 1].

        Shape:
            returns (1, 3, H, W) float32.
        """
        return self.model.preprocess.to_tensor(open_rgb(Path(path))).unsqueeze(0)

    # -- features -----------------------------------------------------------------------------------
    def _cache(self, runtime: Runtime, cache_dir: Path | str | None) -> FeatureCache:
        fingerprint = self.record.backbone.get("fingerprint")
        return FeatureCache(cache_dir, cache_key(self.model, runtime, fingerprint))

    def _probabilities(
        self, paths: Sequence[Path], *, cache_dir: Path | str | None, precision: str, batch_size: int, progress: Progress | None
    ):
        runtime = pick_runtime(precision=precision)
        cb = (lambda d, t: progress("features", d, t)) if progress else None
        ex = extract_features(self.model, paths, cache=self._cache(runtime, cache_dir), runtime=runtime, batch_size=batch_size, progress=cb)
        weight, bias = (t.detach().float().cpu() for t in (self.model.head.weight, self.model.head.bias))  # the model stays put
        with torch.no_grad():
            probs = torch.softmax(torch.nn.functional.linear(ex.features, weight, bias), dim=1).numpy()
        return ex, probs

    # -- public -------------------------------------------------------------------------------------
    def predict(
        self,
        paths: Sequence[Path | str],
        k: int = 5,
        *,
        cache_dir: Path | str | None = None,
        precision: str = "auto",
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> list[dict[str, Any]]:
        """Top-k labels per image: ``[{"path": ..., "top": [{"label": ..., "prob": ...}, ...]}, ...]``.

        Files that cannot be decoded get ``{"path": ..., "error": reason}`` instead of ``top``.
        """
        paths = [Path(p) for p in paths]
        ex, probs = self._probabilities(paths, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=progress)
        k = min(k, len(self.classes))
        rows: dict[int, dict[str, Any]] = {}
        for row, i in enumerate(ex.ok):
            order = np.argsort(-probs[row])[:k]
            rows[i] = {"path": str(paths[i]), "top": [{"label": self.classes[j], "prob": float(probs[row, j])} for j in order]}
        for i, path in enumerate(paths):
            if i not in rows:
                rows[i] = {"path": str(path), "error": ex.failed.get(path, "not processed")}
        return [rows[i] for i in range(len(paths))]

    def predict_proba(
        self, paths: Sequence[Path | str], *, cache_dir: Path | str | None = None, precision: str = "auto", batch_size: int | None = None,
    ) -> np.ndarray:
        """Class probabilities of image files, exactly as ``predict`` computes them.

        Shape:
            returns (N, C) float, C = ``len(self.classes)``.

        Raises:
            DataError: a file cannot be decoded (``predict`` reports such files in place instead).
        """
        paths = [Path(p) for p in paths]
        ex, probs = self._probabilities(paths, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=None)
        if ex.failed:
            path, reason = next(iter(ex.failed.items()))
            raise DataError(f"cannot read {path}: {reason}")
        return probs

    def load_photo(self, path: Path | str) -> torch.Tensor:
        """A photo at its own size in [0, 1] on the 8-bit grid: what ``models.PhotoClassifier`` takes.

        Shape:
            returns (1, 3, H, W) float32.
        """
        from .models.photo import photo_tensor

        return photo_tensor(open_rgb(Path(path)))

    def evaluate(
        self,
        dataset: Dataset,
        split: str | None = None,
        out: Path | str | None = None,
        *,
        cache_dir: Path | str | None = None,
        precision: str = "auto",
        batch_size: int | None = None,
        top_losses: int = 16,
        progress: Progress | None = None,
    ) -> Evaluation:
        """Score the run on ``split`` of ``dataset`` (default: test, else val, else all images).

        With ``out``, writes ``metrics.json``, ``confusion_matrix.png``, ``top_losses.png`` and
        ``predictions.csv`` there.
        """
        samples, split = _evaluation_samples(dataset, split)
        check_classes(self.classes, dataset.classes, dataset.root)
        paths = [s.path for s in samples]
        ex, probs = self._probabilities(paths, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=progress)
        to_run = {c: self.classes.index(c) for c in dataset.classes}
        y_true = np.array([to_run[dataset.classes[samples[i].label]] for i in ex.ok], dtype=int)
        kept = [paths[i] for i in ex.ok]
        if not kept:
            raise DataError(f"no readable images in the {split} split of {dataset.root}")
        from .evaluate import classification_report

        species = self.record.species or dataset.species
        report = classification_report(y_true, probs, self.classes, species=species)
        report.update(split=split, skipped=len(ex.failed))
        seen = self.record.seen_hashes()
        was_seen = np.array([bool(ex.hashes[i]) and short_hash(ex.hashes[i]) in seen for i in ex.ok], dtype=bool)
        near = self._near_copies(dataset, paths, ex, was_seen, seen, cache_dir=cache_dir, precision=precision, batch_size=batch_size) if seen else np.zeros_like(was_seen)
        if was_seen.any():
            report["seen_in_training"] = int(was_seen.sum())
        if near.any():
            report["near_copies_of_training"] = int(near.sum())
        left_out = was_seen | near
        if seen and (~left_out).any():
            unseen = classification_report(y_true[~left_out], probs[~left_out], self.classes)
            report["unseen"] = {"n": int((~left_out).sum()), "left_out": int(left_out.sum()), "accuracy": unseen["accuracy"], "balanced_accuracy": unseen["balanced_accuracy"]}
        if left_out.any():
            honest = (f"on the {report['unseen']['n']} unseen ones: accuracy {report['unseen']['accuracy']:.3f}, balanced {report['unseen']['balanced_accuracy']:.3f}"
                      if "unseen" in report else "none is unseen, so this is no measure of how the run does on new photos")
            log.warning("%d of the %d images scored were used to train or tune this run (%d same file contents, %d near copies); %s",
                        left_out.sum(), len(left_out), was_seen.sum(), near.sum(), honest)
        result = Evaluation(report, kept, y_true, probs, ex.failed)
        if out is not None:
            result.files = _write_evaluation(Path(out), result, self.classes, top_losses)
        return result

    def _near_copies(self, dataset: Dataset, paths: list[Path], ex, was_seen: np.ndarray, seen: set[str], **how: Any) -> np.ndarray:
        """Which scored images (rows of ``ex``) are near copies (re-encoded, resized, cropped, recoloured,
        mirrored: ``audit.copies_in``) of an image this run learnt from, among ``dataset``'s other images."""
        from .audit import copies_in
        from .audit.neighbours import normalise

        near = np.zeros(len(ex.ok), dtype=bool)
        scored = set(paths)
        others = [s.path for s in dataset.samples if s.path not in scored]
        if not others or was_seen.all():
            return near
        with ThreadPoolExecutor(8) as pool:  # hash first: only the images the run learnt from need features
            others = [p for p, h in zip(others, pool.map(_short_hash_of, others)) if h in seen]
        runtime = pick_runtime(precision=how["precision"])
        base = extract_features(self.model, others, cache=self._cache(runtime, how["cache_dir"]), runtime=runtime, batch_size=how["batch_size"])
        rows = [r for r, i in enumerate(base.ok) if base.hashes[i] and short_hash(base.hashes[i]) in seen]
        query = np.flatnonzero(~was_seen)
        if not rows:
            return near
        found = copies_in([paths[ex.ok[r]] for r in query], [ex.hashes[ex.ok[r]] for r in query], normalise(ex.features[query]),
                          [others[base.ok[r]] for r in rows], [base.hashes[base.ok[r]] for r in rows], normalise(base.features[rows]))
        near[query[list(found)]] = True
        return near

    def save(self, directory: Path | str) -> Path:
        """Write ``model.safetensors`` + ``model.json`` to ``directory``; returns it."""
        directory = Path(directory)
        save_model(directory, self.model, self.record.to_dict())
        self.directory = directory
        return directory


def _short_hash_of(path: Path) -> str | None:
    from .data import content_hash

    try:
        return short_hash(content_hash(path.read_bytes()))
    except OSError:
        return None


def check_classes(run_classes: Sequence[str], data_classes: Sequence[str], root: Path) -> None:
    """Raise ``RunError`` when the data has classes the run cannot predict, naming both differences.

    Data with fewer classes than the run (a subset) is fine: the run's extra classes are just never right.
    """
    missing = sorted(set(data_classes) - set(run_classes))
    if not missing:
        return
    extra = sorted(set(run_classes) - set(data_classes))

    def names(items: list[str]) -> str:
        return ", ".join(items[:10]) + (f" … ({len(items)} in all)" if len(items) > 10 else "")

    raise RunError(
        f"the labels of this run do not match the data in {root}: the data has {len(missing)} class(es) the run was not "
        f"trained on ({names(missing)})" + (f", and the run has {len(extra)} the data lacks ({names(extra)})" if extra else "")
        + " — evaluate on data with the run's classes, or train a run on this data"
    )


def load(directory: Path | str) -> Run:
    """Load a run directory written by ``train``/``Run.save`` (safetensors + JSON; nothing unpickled)."""
    model, meta = load_model(directory)
    return Run(model, meta, Path(directory))


def from_backbone(name: str = DEFAULT_BACKBONE, weights: Path | str | None = None) -> Run:
    """A "run" that is just a pretrained backbone with its ImageNet head, for predicting ImageNet classes."""
    backbone = create_backbone(name, weights)
    if not backbone.model.classes:
        raise RunError(f"{name!r} has no classification head to predict with — train a run on your data first")
    record = RunRecord(backbone={"name": name, "arch": backbone.arch, "weights": backbone.weights}, strategy="pretrained", transferlab_version=__version__)
    return Run(backbone.model, record)


def open_model(spec: Path | str, weights: Path | str | None = None) -> Run:
    """A run folder, or a backbone name (its ImageNet head): what every ``MODEL`` argument accepts."""
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        return load(path)
    if not text.startswith(("hf-hub:", "hf_hub:")) and ("/" in text or text.startswith(".") or path.exists()):
        raise RunError(f"no run folder at {text} — give a run made by `transferlab train` or a backbone name")
    return from_backbone(text, weights)


def default_run_dir(dataset: Dataset, backbone: str, root: Path = Path("runs")) -> Path:
    """``runs/<data>-<backbone>``, numbered so an earlier run is never overwritten."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{dataset.root.name}-{backbone}")
    candidate, n = root / base, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{base}-{n}"
    return candidate


def _evaluation_samples(dataset: Dataset, split: str | None) -> tuple[list[Sample], str]:
    if split in (None, "auto"):
        for name in ("test", "val"):
            if dataset.split(name):
                return dataset.split(name), name
        return list(dataset.samples), "all"
    if split == "all":
        return list(dataset.samples), "all"
    samples = dataset.split(split)
    if not samples:
        raise DataError(f"the {split} split of {dataset.root} is empty — choose --split test, val, train or all")
    return samples, split


def _write_evaluation(out: Path, result: Evaluation, classes: list[str], n_losses: int) -> dict[str, Path]:
    from .data import open_rgb
    from .evaluate import plot_confusion_matrix, plot_top_losses, save_figure, top_losses

    out.mkdir(parents=True, exist_ok=True)
    files = {"metrics": out / "metrics.json", "confusion_matrix": out / "confusion_matrix.png", "top_losses": out / "top_losses.png", "predictions": out / "predictions.csv"}
    write_json(files["metrics"], result.report)
    cm = np.array(result.report["confusion_matrix"])
    save_figure(plot_confusion_matrix(cm, classes), files["confusion_matrix"])
    pred = result.probs.argmax(1)
    worst = [i for i in top_losses(result.y_true, result.probs, n_losses) if pred[i] != result.y_true[i]]
    images = []
    for i in worst:
        img = open_rgb(result.paths[i].read_bytes())
        img.thumbnail((256, 256))
        images.append(img)
    fig = plot_top_losses(
        images,
        [classes[result.y_true[i]] for i in worst],
        [classes[pred[i]] for i in worst],
        [float(result.probs[i, pred[i]]) for i in worst],
        [float(result.probs[i, result.y_true[i]]) for i in worst],
    )
    save_figure(fig, files["top_losses"])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "true", "predicted", "prob_predicted", "prob_true", "correct"])
    for i, path in enumerate(result.paths):
        t, p = result.y_true[i], pred[i]
        writer.writerow([str(path), classes[t], classes[p], f"{result.probs[i, p]:.6f}", f"{result.probs[i, t]:.6f}", int(t == p)])
    atomic_write_bytes(files["predictions"], buf.getvalue().encode("utf-8", "surrogateescape"))  # non-UTF-8 names as on disk
    return files

