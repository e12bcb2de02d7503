"""Scoring a run on a labelled split: metrics, calibration, "none of these", which scored images the run has
seen (exact or near copies of its training images), and the files ``evaluate`` writes."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._html import notebook_progress
from .._io import atomic_write_bytes, write_json
from .._types import Progress
from ..data import Dataset
from ..data.file_index import FileIndex, file_facts
from ..errors import DataError, RunError
from ..features import extract_features, pick_runtime
from ..models.confidence import Confidence
from .prediction import Scored
from .record import RunRecord, short_hash

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger(__name__)


@dataclass(repr=False)  # the default repr would print every array
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

    def __repr__(self) -> str:
        r = self.metrics
        return f"Evaluation(split={r.get('split')!r}, n={r.get('n')}, accuracy={self.accuracy:.3f}, classes={len(r.get('per_class', ()))}, files={len(self.files)})"

    def _repr_html_(self) -> str:
        """The summary table, the per-class table and the confusion matrix (an inline PNG), for Jupyter."""
        from .. import _html
        from ..evaluate import plot_confusion_matrix

        r = self.metrics
        classes = [c["class"] for c in r["per_class"]]
        per_class = [(c["class"], f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", c["support"]) for c in r["per_class"]]
        confused = "; ".join(f"{p['true']} → {p['predicted']} ({p['count']})" for p in r["most_confused"][:5])
        figure = plot_confusion_matrix(np.array(r["confusion_matrix"]), classes)
        return _html.block(
            _html.table(("measure", "value"), _summary_rows(r), caption=f"{r['split']} split, {r['n']} images"),
            _html.table(("class", "precision", "recall", "F1", "support"), per_class),
            _html.text(f"most confused: {confused}") if confused else "",
            _html.img(figure, alt="confusion matrix", width=min(640, 90 * len(classes) + 320)),
            _html.text(f"wrote {', '.join(str(p) for p in self.files.values())}") if self.files else "",
            title="Evaluation",
        )

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


def _summary_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    """(measure, value) rows of what ``Evaluation.__rich__`` says in its lines, for the HTML table."""
    rows = [("accuracy", f"{r['accuracy']:.3f}"), ("balanced accuracy", f"{r['balanced_accuracy']:.3f}"), ("macro F1", f"{r['macro_f1']:.3f}")]
    rows += [(name, f"{r[key]:.3f}") for key, name in (("top5_accuracy", "top-5 accuracy"), ("species_accuracy", "species accuracy"), ("log_loss", "log-loss")) if key in r]
    if "unseen" in r:
        u = r["unseen"]
        rows.append((f"unseen accuracy (n={u['n']}; left out: {u['left_out']}, copies of training images)", f"{u['accuracy']:.3f}"))
    if "calibration" in r:
        c = r["calibration"]
        rows.append((f"ECE, temperature {c['temperature']:.2f} (before → after)", f"{c['ece_before']:.3f} → {c['ece_after']:.3f}"))
    i = r.get("in_distribution") or {}
    if i.get("method") and i.get("threshold") is not None:
        rows.append((f"accepted as one of the classes ({i['method']} score; threshold accepts {100 * i['accept']:.0f} % of validation)", f"{100 * i['accepted']:.1f} %"))
    if "ood" in r:
        o = r["ood"]
        rows.append((f"out of distribution, {o['n_out']} images: {o['method']} AUROC / FPR95", f"{o['auroc']:.3f} / {o['fpr95']:.3f}"))
    return rows


def evaluate(
    run: Run,
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
    ``predictions.csv`` and ``calibration.png`` (+ ``ood_scores.png`` with ``ood``) there. In a notebook
    without ``progress``, a progress bar.
    """
    progress = notebook_progress(progress)  # a bar in a notebook when none was given
    samples, split = dataset.evaluation_split(split)
    check_classes(run.classes, dataset.classes, dataset.root)
    paths = [s.path for s in samples]
    ex = run.predict_scored(paths, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=progress)
    probs = ex.probs
    to_run = {c: run.classes.index(c) for c in dataset.classes}
    y_true = np.array([to_run[dataset.classes[samples[i].label]] for i in ex.ok], dtype=int)
    kept = [paths[i] for i in ex.ok]
    if not kept:
        raise DataError(f"no readable images in the {split} split of {dataset.root}")
    from ..evaluate import classification_report

    species = run.record.species or dataset.species
    report = classification_report(y_true, probs, run.classes, species=species)
    report.update(split=split, skipped=len(ex.failed))
    if ex.views:
        report["tta"] = ["plain", *ex.views]  # the views whose features were averaged
    from ..evaluate.confidence_report import confidence_report

    raw = torch.softmax(torch.as_tensor(ex.logits), dim=1).numpy()  # before temperature scaling
    report.update(confidence_report(y_true, raw, probs, ex.scores, ex.accepted, run.confidence))
    _mark_seen(run, dataset, paths, ex, y_true, report, cache_dir=cache_dir, precision=precision, batch_size=batch_size)
    result = Evaluation(report, kept, y_true, probs, ex.failed, scores=ex.scores)
    if ood:
        _evaluate_ood(run, result, ood, cache_dir=cache_dir, precision=precision, batch_size=batch_size)
    if out is not None:
        result.files = _write_evaluation(Path(out), result, run.classes, top_losses)
        result.files.update(_write_confidence(Path(out), result, raw, run.confidence))
    return result


def _mark_seen(run: Run, dataset: Dataset, paths: list[Path], ex: Scored, y_true: np.ndarray, report: dict[str, Any], **how: Any) -> None:
    """Count the scored images the run learnt from or chose on (same file contents, or near copies of such
    images among the data set's others) and add the accuracy on the rest (``report["unseen"]``)."""
    from ..evaluate import classification_report

    seen = run.record.seen_hashes()
    was_seen = np.array([bool(ex.hashes[i]) and short_hash(ex.hashes[i]) in seen for i in ex.ok], dtype=bool)
    near = _near_copies(run, dataset, paths, ex, was_seen, seen, **how) if seen else np.zeros_like(was_seen)
    if was_seen.any():
        report["seen_in_training"] = int(was_seen.sum())
    if near.any():
        report["near_copies_of_training"] = int(near.sum())
    left_out = was_seen | near
    if seen and (~left_out).any():
        unseen = classification_report(y_true[~left_out], ex.probs[~left_out], run.classes)
        report["unseen"] = {"n": int((~left_out).sum()), "left_out": int(left_out.sum()), "accuracy": unseen["accuracy"], "balanced_accuracy": unseen["balanced_accuracy"]}
    if left_out.any():
        honest = (f"on the {report['unseen']['n']} unseen ones: accuracy {report['unseen']['accuracy']:.3f}, balanced {report['unseen']['balanced_accuracy']:.3f}"
                  if "unseen" in report else "none is unseen, so this is no measure of how the run does on new photos")
        log.warning("%d of the %d images scored were used to train or tune this run (%d same file contents, %d near copies); %s",
                    left_out.sum(), len(left_out), was_seen.sum(), near.sum(), honest)


def _evaluate_ood(run: Run, result: Evaluation, ood: Sequence[Path | str], **kw: Any) -> None:
    """Add ``metrics["ood"]``: how well the score tells ``ood`` images from the evaluated ones."""
    from ..evaluate.confidence_report import ood_report

    out = run.predict_scored(ood, **kw)
    if not out.ok:
        raise DataError(f"none of the {len(ood)} out-of-distribution images could be read")
    result.ood_scores = out.scores
    result.metrics["ood"] = ood_report(result.scores, out.scores, run.confidence, result.probs.max(1), out.probs.max(1))

def _near_copies(run: Run, dataset: Dataset, paths: list[Path], ex, was_seen: np.ndarray, seen: set[str], **how: Any) -> np.ndarray:
    """Which scored images (rows of ``ex``) are near copies (re-encoded, resized, cropped, recoloured,
    mirrored: ``audit.copies_in``) of an image this run learnt from, among ``dataset``'s other images."""
    from ..audit import copies_in
    from ..audit.neighbours import feature_dtype, normalise
    from ..audit.pair_memo import PairMemo

    near = np.zeros(len(ex.ok), dtype=bool)
    scored = set(paths)
    others = [s.path for s in dataset.samples if s.path not in scored]
    if not others or was_seen.all():
        return near
    facts = file_facts(others, FileIndex(how["cache_dir"]))  # hash first (a stat for files the index knows): only the images the run learnt from need features
    others = [p for p, f in zip(others, facts) if f.digest and short_hash(f.digest) in seen]
    runtime = pick_runtime(precision=how["precision"])
    dtype = feature_dtype(len(others))  # float16 past the exact size: the training images are read shard by shard, never all in float32
    base = extract_features(run.model, others, cache=run._cache(runtime, how["cache_dir"]), runtime=runtime, batch_size=how["batch_size"], dtype=dtype)
    rows = [r for r, i in enumerate(base.ok) if base.hashes[i] and short_hash(base.hashes[i]) in seen]
    query = np.flatnonzero(~was_seen)
    if not rows:
        return near
    found = copies_in([paths[ex.ok[r]] for r in query], [ex.hashes[ex.ok[r]] for r in query], normalise(ex.features[query], dtype),
                      [others[base.ok[r]] for r in rows], [base.hashes[base.ok[r]] for r in rows], normalise(base.features[rows], dtype), memo=PairMemo(how["cache_dir"]))
    near[query[list(found)]] = True
    return near


def summary(record: RunRecord, confidence: Confidence, n_classes: int, directory: Path | None) -> str:
    """How a run was made and its held-out score, in ``rich`` markup (what ``transferlab train`` prints)."""
    from rich.markup import escape

    m, t = record.metrics or {}, record.timing
    lines = [escape(record.decision)] if record.decision else []
    seen = max((p.fit for p in record.phases), default=0)
    chosen = record.phases[0].choose_from if record.phases else "?"
    features = " (multi-stage features)" if record.backbone.feature_mode == "multi" else ""
    line = f"trained {escape(str(record.backbone.name))}{features} {record.strategy} (kept: {record.kept}) on {seen} images, choices on {chosen}"
    if t.features_s is not None:
        line += f": features {t.features_s:.1f} s ({t.images_computed} computed, rest cached), head {t.head_s:.1f} s"
    lines.append(line)
    if m:
        extra = f", species accuracy {m['species_accuracy']:.3f}" if "species_accuracy" in m else ""
        lines.append(f"{m['split']} accuracy [bold]{m['accuracy']:.3f}[/] (balanced {m['balanced_accuracy']:.3f}, n={m['n']}{extra}): held out, never used to fit or choose")
        lines += [u for u in (unseen_line(m),) if u]
    else:
        lines.append("no held-out split (the data has only training images): no accuracy to report — add a test/ folder, or let transferlab split the images")
    lines.append(escape(confidence.describe(n_classes)))
    if directory:
        lines.append(f"run saved to [bold]{escape(str(directory))}[/]")
    return "\n".join(lines)


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

