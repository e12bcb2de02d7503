"""A trained run: load it back, evaluate and predict with it (``run.fit.train`` makes one)."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._types import Progress
from .._version import __version__
from .._io import atomic_write_bytes
from ..data import Dataset, open_rgb
from ..errors import DataError, RunError
from ..features import FeatureCache, cache_key, extract_features, pick_runtime
from ..features.runtime import Runtime
from ..models import DEFAULT_BACKBONE, ImageClassifier, create_backbone, load_model, resolve_class, save_model, write_json
from ..models.confidence import TENSORS_FILE, Confidence
from . import prediction
from .prediction import Photo, Prediction, Scored
from .record import RunRecord, short_hash

if TYPE_CHECKING:  # the notebook methods' result types, from the modules those methods call
    from ..inspect.dream import Dream, DreamConfig
    from ..inspect.gradcam import CAM

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Metrics of a run on one split of a dataset, and the files written for it."""

    metrics: dict[str, Any]  # accuracy, per-class rows, confusion matrix ... (what metrics.json holds)
    paths: list[Path]
    y_true: np.ndarray  # (N,) indices into the run's classes
    probs: np.ndarray  # (N, C)
    failed: dict[Path, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # name -> written file
    scores: np.ndarray | None = None  # (N,) in-distribution scores
    ood_scores: np.ndarray | None = None  # (M,) scores of the out-of-distribution images, with ``ood``

    @property
    def accuracy(self) -> float:
        return float(self.metrics["accuracy"])

    @property
    def report(self) -> dict[str, Any]:
        """0.1's name for ``metrics``."""
        return self.metrics

    def __rich__(self) -> Any:
        """The summary line, the per-class table and the most confused pairs, as ``rich`` renders them."""
        from rich.console import Group
        from rich.markup import escape
        from rich.table import Table

        r = self.metrics
        line = f"{r['split']} split, {r['n']} images: accuracy [bold]{r['accuracy']:.3f}[/], balanced {r['balanced_accuracy']:.3f}, macro F1 {r['macro_f1']:.3f}"
        line += f", top-5 {r['top5_accuracy']:.3f}" if "top5_accuracy" in r else ""
        line += f", species {r['species_accuracy']:.3f}" if "species_accuracy" in r else ""
        unseen = unseen_line(r)
        line += f"\n{unseen}" if unseen else ""
        table = Table("class", "precision", "recall", "F1", "support")
        for c in r["per_class"]:
            table.add_row(escape(c["class"]), f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
        parts: list[Any] = [line, table]
        if r["most_confused"]:
            parts.append("most confused: " + "; ".join(escape(f"{p['true']} → {p['predicted']} ({p['count']})") for p in r["most_confused"][:5]))
        if "calibration" in r:
            c = r["calibration"]
            parts.append(f"calibration (temperature {c['temperature']:.2f}): ECE {c['ece_before']:.3f} → [bold]{c['ece_after']:.3f}[/], log-loss {c['log_loss_before']:.3f} → {c['log_loss_after']:.3f}")
        i = r.get("in_distribution") or {}
        if i.get("method") and i.get("threshold") is not None:
            parts.append(f"'none of these' ({i['method']} score): accepts {100 * i['accepted']:.1f} % of these images (threshold set to accept {100 * i['accept']:.0f} % of validation images)")
        elif i:
            parts.append(escape(f"note: {i.get('note', '')} — add one with `transferlab calibrate RUN DATA`"))
        if "ood" in r:
            o, b = r["ood"], r["ood"]["baseline"]
            accepted = f"; the run's threshold accepts {100 * o['accepted_out']:.1f} % of them" if "accepted_out" in o else ""
            parts.append(f"out of distribution ({o['n_out']} images): {o['method']} AUROC [bold]{o['auroc']:.3f}[/], FPR95 [bold]{o['fpr95']:.3f}[/]{accepted} (max softmax: AUROC {b['auroc']:.3f}, FPR95 {b['fpr95']:.3f})")
        if self.files:
            parts.append(f"wrote {', '.join(escape(str(p)) for p in self.files.values())}")
        return Group(*parts)


class Run:
    """A trained classifier with its metadata; what ``train`` returns and ``load`` reads.

    Attributes:
        model: the network (pixels in [0, 1] -> logits over ``classes``).
        record: everything recorded about how it was made (backbone, data, phases, metrics...).
        directory: where it is saved, if it is.
        confidence: temperature and "none of these" threshold (a run made before them: neither).
    """

    def __init__(self, model: ImageClassifier, record: RunRecord | dict[str, Any], directory: Path | None = None, confidence: Confidence | None = None) -> None:
        self.model = model
        self.record = record if isinstance(record, RunRecord) else RunRecord.from_dict(record)
        self.directory = directory
        self.confidence = confidence if confidence is not None else Confidence.from_record(self.record.confidence)

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

    def __rich__(self) -> str:
        """How the run was made and its held-out score (what ``transferlab train`` prints)."""
        from rich.markup import escape

        record, m = self.record, self.record.metrics or {}
        t = record.timing or {}
        lines = [escape(record.decision)] if record.decision else []
        seen = max((p.fit for p in record.phases), default=0)
        chosen = record.phases[0].choose_from if record.phases else "?"
        features = " (multi-stage features)" if record.backbone.get("features") == "multi" else ""
        line = f"trained {escape(str(record.backbone.get('name')))}{features} {record.strategy} (kept: {record.kept}) on {seen} images, choices on {chosen}"
        if "features_s" in t:
            line += f": features {t['features_s']:.1f} s ({t['images_computed']} computed, rest cached), head {t['head_s']:.1f} s"
        lines.append(line)
        if m:
            extra = f", species accuracy {m['species_accuracy']:.3f}" if "species_accuracy" in m else ""
            lines.append(f"{m['split']} accuracy [bold]{m['accuracy']:.3f}[/] (balanced {m['balanced_accuracy']:.3f}, n={m['n']}{extra}): held out, never used to fit or choose")
            lines += [u for u in (unseen_line(m),) if u]
        else:
            lines.append("no held-out split (the data has only training images): no accuracy to report — add a test/ folder, or let transferlab split the images")
        lines.append(escape(self.confidence.describe(len(self.classes))))
        if self.directory:
            lines.append(f"run saved to [bold]{escape(str(self.directory))}[/]")
        return "\n".join(lines)

    def class_index(self, name: str | int) -> int:
        """Index of a class given by exact or fuzzy name ("siamese" -> "Siamese cat") or by number."""
        return resolve_class(self.classes, name)

    def load_image(self, photo: Photo) -> torch.Tensor:
        """A photo (file, PIL image or tensor) as the model sees it at evaluation: resized, centre-cropped, in [0, 1].

        Shape:
            returns (1, 3, H, W) float32.
        """
        return prediction.float_view(self.model, photo).unsqueeze(0)

    # -- features -----------------------------------------------------------------------------------
    def _cache(self, runtime: Runtime, cache_dir: Path | str | None) -> FeatureCache:
        fingerprint = self.record.backbone.get("fingerprint")
        return FeatureCache(cache_dir, cache_key(self.model, runtime, fingerprint))

    def predict_scored(
        self, paths: Sequence[Path | str], *, cache_dir: Path | str | None = None, precision: str = "auto", batch_size: int | None = None, progress: Progress | None = None,
    ) -> Scored:
        """Calibrated probabilities, in-distribution score and accept decision of image files.

        What ``predict``, ``evaluate`` and batch jobs build on; unreadable files are listed in ``failed``.
        """
        return prediction.predict_scored(self, paths, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=progress)

    def score_features(self, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pooled backbone features -> (calibrated probabilities (N, C), in-distribution scores (N,), accepted (N,)
        bool, raw logits (N, C)): the head in fp32 on the CPU, the run's temperature and threshold (the model stays put)."""
        s = prediction.score_features(self, features)
        return s.probs, s.scores, s.accepted, s.logits  # type: ignore[return-value]

    # -- public -------------------------------------------------------------------------------------
    def predict(
        self,
        photos: Photo | Sequence[Photo],
        k: int = 5,
        *,
        cache_dir: Path | str | None = None,
        precision: str = "auto",
        batch_size: int | None = None,
        progress: Progress | None = None,
    ) -> list[Prediction]:
        """Top-k labels per photo, with the "none of these" decision and the "not sure" flag (``run.prediction``).

        ``photos``: image files (their features cached), PIL images, or tensors in [0, 1] ((3, H, W), or a
        (B, 3, H, W) batch), one or a list; in-memory photos get ``path`` None. ``label`` is the top class,
        or None when the photo looks like none of the classes (``in_distribution`` False); ``closest``/``prob``
        are the top class and its calibrated probability either way; ``score`` is the in-distribution score
        (None when the run has no threshold); ``unsure``: accepted, but ``prob`` is below the run's "not sure"
        setting. Each ``Prediction`` reads like 0.1's dict (``p["top"][0]["prob"]``; ``p.to_dict()`` for JSON).
        Files that cannot be decoded get only ``path`` and ``error``.
        """
        return prediction.predict(self, photos, k, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=progress)

    def predict_proba(
        self, photos: Photo | Sequence[Photo], *, cache_dir: Path | str | None = None, precision: str = "auto", batch_size: int | None = None,
    ) -> np.ndarray:
        """Class probabilities of photos (files, PIL images or [0, 1] tensors), exactly as ``predict`` computes them.

        Shape:
            returns (N, C) float, C = ``len(self.classes)``.

        Raises:
            DataError: a file cannot be decoded (``predict`` reports such files in place instead).
        """
        return prediction.predict_proba(self, photos, cache_dir=cache_dir, precision=precision, batch_size=batch_size)

    def load_photo(self, path: Path | str) -> torch.Tensor:
        """A photo at its own size in [0, 1] on the 8-bit grid: what ``models.PhotoClassifier`` takes.

        Shape:
            returns (1, 3, H, W) float32.
        """
        from ..models.photo import photo_tensor

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
        ood: Sequence[Path | str] | None = None,
    ) -> Evaluation:
        """Score the run on ``split`` of ``dataset`` (default: test, else val, else all images).

        The report holds calibration (ECE, log-loss before and after temperature scaling) and the
        share accepted as in distribution; with ``ood`` (images of none of the classes), how well the
        in-distribution score tells them apart (``metrics["ood"]``: AUROC, FPR95, max-softmax beside it).
        With ``out``, writes ``metrics.json``, ``confusion_matrix.png``, ``top_losses.png``,
        ``predictions.csv`` and ``calibration.png`` (+ ``ood_scores.png`` with ``ood``) there.
        """
        samples, split = dataset.evaluation_split(split)
        check_classes(self.classes, dataset.classes, dataset.root)
        paths = [s.path for s in samples]
        ex = self.predict_scored(paths, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=progress)
        probs = ex.probs
        to_run = {c: self.classes.index(c) for c in dataset.classes}
        y_true = np.array([to_run[dataset.classes[samples[i].label]] for i in ex.ok], dtype=int)
        kept = [paths[i] for i in ex.ok]
        if not kept:
            raise DataError(f"no readable images in the {split} split of {dataset.root}")
        from ..evaluate import classification_report

        species = self.record.species or dataset.species
        report = classification_report(y_true, probs, self.classes, species=species)
        report.update(split=split, skipped=len(ex.failed))
        from ..evaluate.confidence_report import confidence_report

        raw = torch.softmax(torch.as_tensor(ex.logits), dim=1).numpy()  # before temperature scaling
        report.update(confidence_report(y_true, raw, probs, ex.scores, ex.accepted, self.confidence))
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
        result = Evaluation(report, kept, y_true, probs, ex.failed, scores=ex.scores)
        if ood:
            self._evaluate_ood(result, ood, cache_dir=cache_dir, precision=precision, batch_size=batch_size)
        if out is not None:
            result.files = _write_evaluation(Path(out), result, self.classes, top_losses)
            result.files.update(_write_confidence(Path(out), result, raw, self.confidence))
        return result

    def _evaluate_ood(self, result: Evaluation, ood: Sequence[Path | str], **kw: Any) -> None:
        """Add ``metrics["ood"]``: how well the score tells ``ood`` images from the evaluated ones."""
        from ..evaluate.confidence_report import ood_report

        out = self.predict_scored(ood, **kw)
        if not out.ok:
            raise DataError(f"none of the {len(ood)} out-of-distribution images could be read")
        result.ood_scores = out.scores
        result.metrics["ood"] = ood_report(result.scores, out.scores, self.confidence, result.probs.max(1), out.probs.max(1))

    def training_data(self) -> Dataset | None:
        """The data set this run was trained on, loaded again with the same splits; None when the run has no
        data record (a bare backbone) or the folder is gone."""
        data = self.meta.get("data")
        if not data or not Path(data["root"]).exists():
            return None
        from ..data import load_recorded

        return load_recorded(data)

    # -- the notebook's questions: each a thin call into the module that answers it --------------------
    def explain(self, photo: Photo, target: int | str | None = None, layer: str | None = None) -> CAM:
        """Grad-CAM of ``target`` (default: the predicted class) on ``photo`` as the model sees it (``inspect.gradcam``)."""
        from ..inspect.gradcam import gradcam

        return gradcam(self.model, self.load_image(photo), target, layer)

    def dream(self, target: int | str, config: DreamConfig | None = None, *, init: Photo | None = None, progress: Any = None) -> Dream:
        """The image that ``target``'s class is most sure of, from noise or from ``init`` (``inspect.dream``)."""
        from ..inspect.dream import DreamConfig, dream

        start = self.load_image(init) if init is not None else None
        return dream(self.model, target, config or DreamConfig(), init=start, progress=progress)

    def __getattr__(self, name: str) -> Any:
        if name in _MOVED:  # 0.1's notebook methods, now the task functions that take a run
            raise AttributeError(f"Run.{name} is now a function: call transferlab.{name}(run, {_MOVED[name]}) (import transferlab as tl)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _near_copies(self, dataset: Dataset, paths: list[Path], ex, was_seen: np.ndarray, seen: set[str], **how: Any) -> np.ndarray:
        """Which scored images (rows of ``ex``) are near copies (re-encoded, resized, cropped, recoloured,
        mirrored: ``audit.copies_in``) of an image this run learnt from, among ``dataset``'s other images."""
        from ..audit import copies_in
        from ..audit.neighbours import normalise

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
        """Write ``model.safetensors`` + ``model.json`` (+ ``confidence.safetensors``) to ``directory``; returns it."""
        from safetensors.torch import save

        directory = Path(directory)
        self.record.confidence = self.confidence.to_record() if self.confidence.method or self.confidence.temperature != 1.0 else None
        save_model(directory, self.model, self.record.to_dict())
        (directory / TENSORS_FILE).unlink(missing_ok=True)
        if self.confidence.tensors:
            atomic_write_bytes(directory / TENSORS_FILE, save({k: v.contiguous() for k, v in self.confidence.tensors.items()}))
        self.directory = directory
        return directory


_MOVED = {"attack": "photo, target, ...", "robustness": "dataset, eps, ...", "export": "format, out, ...", "report": "out, ..."}


def unseen_line(m: dict[str, Any]) -> str | None:
    """The accuracy on the scored images with no exact or near copy among the training images (None when
    every scored image is new to the run)."""
    left = m.get("seen_in_training", 0) + m.get("near_copies_of_training", 0)
    if "unseen" in m:
        u = m["unseen"]
        return (f"unseen {m['split']} accuracy [bold]{u['accuracy']:.3f}[/] (balanced {u['balanced_accuracy']:.3f}, n={u['n']}): "
                f"{left} left out as exact ({m.get('seen_in_training', 0)}) or near ({m.get('near_copies_of_training', 0)}) copies of training images")
    if left:
        return f"all {left} images scored are exact or near copies of training images: no unseen accuracy"
    return None


def _short_hash_of(path: Path) -> str | None:
    from ..data import content_hash

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
    tensors = Path(directory) / TENSORS_FILE
    if meta.get("confidence") and tensors.is_file():
        from safetensors.torch import load_file

        return Run(model, meta, Path(directory), Confidence.from_record(meta["confidence"], load_file(str(tensors))))
    if (meta.get("confidence") or {}).get("method") in ("knn", "mahalanobis"):
        raise RunError(f"{str(directory)!r} lacks {TENSORS_FILE}, which its 'none of these' score needs — copy the whole run folder, or calibrate it again (`transferlab calibrate RUN DATA`)")
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


def _write_confidence(out: Path, result: Evaluation, raw: np.ndarray, confidence: Confidence) -> dict[str, Path]:
    from ..evaluate import save_figure
    from ..evaluate.calibration import plot_reliability, plot_score_histogram

    files = {"calibration": save_figure(plot_reliability(result.y_true, raw, result.probs), out / "calibration.png")}
    if result.ood_scores is not None:
        files["ood_scores"] = save_figure(plot_score_histogram(result.scores, result.ood_scores, confidence.threshold, confidence.method or "msp"), out / "ood_scores.png")
    write_json(out / "metrics.json", result.metrics)  # now with the "ood" block
    return files


def _write_evaluation(out: Path, result: Evaluation, classes: list[str], n_losses: int) -> dict[str, Path]:
    from ..data import open_rgb
    from ..evaluate import plot_confusion_matrix, plot_top_losses, save_figure, top_losses

    out.mkdir(parents=True, exist_ok=True)
    files = {"metrics": out / "metrics.json", "confusion_matrix": out / "confusion_matrix.png", "top_losses": out / "top_losses.png", "predictions": out / "predictions.csv"}
    write_json(files["metrics"], result.metrics)
    cm = np.array(result.metrics["confusion_matrix"])
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

