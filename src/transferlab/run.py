"""The high-level API: train a run from a dataset, load it back, evaluate and predict with it."""

from __future__ import annotations

import csv
import io
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from ._io import atomic_write_bytes
from .data import Dataset, Sample, find_leaks, open_rgb
from .data.load import settle_classes
from .errors import ConfigError, DataError, RunError
from .features import FeatureCache, cache_key, extract_features, pick_runtime
from .features.runtime import Runtime
from .models import DEFAULT_BACKBONE, ImageClassifier, create_backbone, load_model, resolve_class, save_model, write_json
from .train import FinetuneConfig, ProbeConfig, finetune, fit_probe, stratified_holdout
from .train.distributed import main_first, world
from .train.finetune import check_config

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total), e.g. ("features", 128, 600)
STRATEGIES = ("probe", "finetune")


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
        meta: everything recorded about how it was made (backbone, preprocessing, data, metrics...).
        directory: where it is saved, if it is.
    """

    def __init__(self, model: ImageClassifier, meta: dict[str, Any], directory: Path | None = None) -> None:
        self.model = model
        self.meta = meta
        self.directory = directory

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def __repr__(self) -> str:
        where = f", directory={str(self.directory)!r}" if self.directory else ""
        return f"Run(backbone={self.meta['backbone']['name']!r}, classes={len(self.classes)}{where})"

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
        fingerprint = self.meta["backbone"].get("fingerprint")
        return FeatureCache(cache_dir, cache_key(self.model, runtime, fingerprint))

    def _probabilities(
        self, paths: Sequence[Path], *, cache_dir: Path | str | None, precision: str, batch_size: int, progress: Progress | None
    ):
        runtime = pick_runtime(precision=precision)
        cb = (lambda d, t: progress("features", d, t)) if progress else None
        ex = extract_features(self.model, paths, cache=self._cache(runtime, cache_dir), runtime=runtime, batch_size=batch_size, progress=cb)
        head = self.model.head.float().cpu()
        with torch.no_grad():
            probs = torch.softmax(head(ex.features), dim=1).numpy()
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

        species = self.meta.get("species") or dataset.species
        report = classification_report(y_true, probs, self.classes, species=species)
        report.update(split=split, skipped=len(ex.failed))
        result = Evaluation(report, kept, y_true, probs, ex.failed)
        if out is not None:
            result.files = _write_evaluation(Path(out), result, self.classes, top_losses)
        return result

    def save(self, directory: Path | str) -> Path:
        """Write ``model.safetensors`` + ``model.json`` to ``directory``; returns it."""
        directory = Path(directory)
        save_model(directory, self.model, self.meta)
        self.directory = directory
        return directory


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
    meta = {
        "transferlab_version": __version__,
        "backbone": {"name": name, "arch": backbone.arch, "weights": backbone.weights},
        "strategy": "pretrained",
    }
    return Run(backbone.model, meta)


def open_model(spec: Path | str, weights: Path | str | None = None) -> Run:
    """A run folder, or a backbone name (its ImageNet head): what every ``MODEL`` argument accepts."""
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        return load(path)
    if not text.startswith(("hf-hub:", "hf_hub:")) and ("/" in text or text.startswith(".") or path.exists()):
        raise RunError(f"no run folder at {text} — give a run made by `transferlab train` or a backbone name")
    return from_backbone(text, weights)


def find_lr(
    dataset: Dataset,
    backbone: str = DEFAULT_BACKBONE,
    *,
    weights: Path | str | None = None,
    cache_dir: Path | str | None = None,
    seed: int = 0,
    steps: int = 60,
    finetune_config: FinetuneConfig = FinetuneConfig(),
    progress: Progress | None = None,
):
    """Learning-rate range test for fine-tuning ``backbone`` on the train split, after the probe's head.

    Returns a ``LRFind`` (learning rates, smoothed losses, suggested peak ``lr``).
    """
    from .train.lr_find import lr_find

    run = train(dataset, backbone, "probe", weights=weights, cache_dir=cache_dir, seed=seed, progress=progress)  # phase 1
    items = [(s.path, s.label) for s in dataset.split("train")]
    return lr_find(run.model, items, pick_runtime(), finetune_config, steps=steps, seed=seed)


CHECKPOINT_DEFAULTS = {"train_size_ratio": 1.0, "ema_epochs": 0.0}  # what runs checkpointed before these fields existed did


def resume(directory: Path | str, *, cache_dir: Path | str | None = None, progress: Progress | None = None) -> Run:
    """Continue an interrupted fine-tuning run from its last finished epoch (``checkpoint.pt``).

    The data, backbone and recipe are read from the checkpoint, so the result is what the uninterrupted
    run would have given.
    """
    from .data import load_dataset
    from .train import load_latest_checkpoint
    from .train.checkpoint import previous_path

    directory = Path(directory)
    path = directory / "checkpoint.pt"
    if not path.is_file() and not previous_path(path).is_file():
        raise RunError(f"{str(directory)!r} has no checkpoint.pt to resume from — only fine-tuning runs write one")
    try:
        state, used = load_latest_checkpoint(path)  # a damaged newest checkpoint falls back to the previous epoch's
    except RunError as err:
        raise RunError(f"cannot resume: {err}") from err
    try:
        spec, config = state["run"], FinetuneConfig(**{**CHECKPOINT_DEFAULTS, **state["config"]})
    except (KeyError, TypeError) as err:
        raise RunError(f"cannot resume from {used} ({type(err).__name__}: {err}) — retrain without --resume") from err
    data = spec["data"]
    dataset = load_dataset(data["root"], layout=data["layout"], label=data["label"] if data["layout"] == "oxford" else "breed", **data["split_options"])
    if dataset.fingerprint() != data["fingerprint"]:
        raise RunError(f"the data in {data['root']} changed since this run started — retrain without --resume")
    return train(
        dataset, spec["backbone"], "finetune", weights=spec["weights"], out=directory, cache_dir=cache_dir, seed=spec["seed"],
        precision=spec["precision"], batch_size=spec["batch_size"], probe=ProbeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["probe"].items()}),
        finetune_config=config, progress=progress, resume_from=state,
    )


def train(
    dataset: Dataset,
    backbone: str = DEFAULT_BACKBONE,
    strategy: str = "probe",
    *,
    weights: Path | str | None = None,
    out: Path | str | None = None,
    cache_dir: Path | str | None = None,
    seed: int = 0,
    precision: str = "auto",
    batch_size: int | None = None,
    probe: ProbeConfig = ProbeConfig(),
    finetune_config: FinetuneConfig = FinetuneConfig(),
    progress: Progress | None = None,
    resume_from: dict[str, Any] | None = None,
) -> Run:
    """Train a classifier on ``dataset`` by transfer learning from ``backbone``.

    ``probe``: features of the frozen backbone are extracted once (cached on disk, keyed by image
    content, weights and preprocessing), and a softmax head is fitted on them, its L2 strength chosen on
    the validation split (carved from the training split when the data has none). The run is evaluated
    on the test split (else val) and, with ``out``, saved there with its metrics and plots.

    ``finetune``: the probe first (phase 1), then the backbone unfrozen with a small, layer-wise
    decayed learning rate (phase 2, ``finetune_config``), early-stopped on the validation split; the
    run keeps the best epoch and writes ``history.csv``, ``curves.png`` and ``checkpoint.pt``.

    Raises:
        DataError, BackboneError: data or backbone problems a user can fix (one-sentence messages).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"expected strategy in {STRATEGIES}, got {strategy!r}")
    if strategy == "finetune":
        check_config(finetune_config)  # before minutes of work, not after
    torch.manual_seed(seed)
    started = time.perf_counter()
    bb = create_backbone(backbone, weights)
    runtime = pick_runtime(precision=precision)
    fingerprint = bb.model.backbone_fingerprint()
    cache = FeatureCache(cache_dir, cache_key(bb.model, runtime, fingerprint))
    backbone_seconds = time.perf_counter() - started

    samples = dataset.samples
    cb = (lambda d, t: progress("features", d, t)) if progress else None
    with main_first():  # under torchrun, rank 0 fills the cache and the other ranks read it
        ex = extract_features(bb.model, [s.path for s in samples], cache=cache, runtime=runtime, batch_size=batch_size, progress=cb)
    if ex.failed:
        dataset.drop(ex.failed)
        settle_classes(dataset)  # a class may have lost its last usable images
        log.warning("skipped %d files that could not be decoded", len(ex.failed))
    leaks = find_leaks(dataset, {s.path: h for s, h in zip(samples, ex.hashes)})
    if leaks:
        dataset.warnings.extend(leaks)
        log.warning("%d image(s) appear in two splits (train/test leakage); the run's data record lists the pairs", len(leaks))
    if not dataset.split("train"):
        raise DataError(f"the train split of {dataset.root} is empty — add training images or lower --test-frac")
    feats = {samples[i].path: row for i, row in zip(ex.ok, ex.features)}
    if progress:
        progress("head", 0, 1)
    t_head = time.perf_counter()
    fit_set, val_set = dataset.split("train"), dataset.split("val")
    if strategy == "finetune" and not val_set:  # one holdout for both phases, so phase 2's validation is unseen
        tr, va = stratified_holdout(np.array([s.label for s in fit_set]), probe.val_frac, seed)
        fit_set, val_set = [fit_set[i] for i in tr], [fit_set[i] for i in va]
    # Fine-tuning keeps the head off the validation images: they judge its epochs (and the probe's, as epoch 0).
    fit = fit_probe(*_features_and_labels(fit_set, feats), len(dataset.classes), *_features_and_labels(val_set, feats), probe, seed, refit=strategy != "finetune")
    head_seconds = time.perf_counter() - t_head
    if progress:
        progress("head", 1, 1)

    model = bb.model
    model.set_head(fit.weight, fit.bias, dataset.classes)
    directory = Path(out) if out is not None else None
    tuned, data_record = None, _data_record(dataset)
    if strategy == "finetune":
        record = {"backbone": backbone, "weights": str(weights) if weights else None, "precision": precision, "batch_size": batch_size, "seed": seed, "probe": asdict(probe), "data": data_record}
        tuned = _finetune(model, fit_set, val_set, runtime, finetune_config, seed, directory, progress, resume_from, record)
        fingerprint = model.backbone_fingerprint()
        if finetune_config.refit_head and not tuned.interrupted:
            fit = _refit_head(model, fit_set, val_set, FeatureCache(cache_dir, cache_key(model, runtime, fingerprint)), runtime, batch_size, probe, seed, progress)
    meta = {
        "transferlab_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backbone": {"name": backbone, "arch": bb.arch, "weights": bb.weights, "fingerprint": fingerprint},
        "strategy": strategy,
        "hyperparameters": {**asdict(probe), "chosen_l2": fit.l2, "seed": seed, "precision": runtime.precision, "batch_size": batch_size, **({"finetune": asdict(finetune_config)} if tuned else {})},
        "validation": fit.val_scores,
        "data": data_record,
        "species": dataset.species,
        "timing": {"backbone_s": round(backbone_seconds, 3), "features_s": round(ex.seconds, 3), "images_computed": ex.computed, "head_s": round(head_seconds, 3)},
    }
    if tuned is not None:
        meta["finetune"] = {"head_refit": finetune_config.refit_head and not tuned.interrupted, "best_epoch": tuned.best_epoch, "stopped_early": tuned.stopped_early, "interrupted": tuned.interrupted, "history": tuned.history}
        meta["timing"]["finetune_s"] = round(sum(row.get("train_s", 0.0) for row in tuned.history), 3)
    run = Run(model, meta)
    if not world().is_main:
        return run  # under torchrun only rank 0 evaluates and writes the run directory
    eval_split = "test" if dataset.split("test") else ("val" if dataset.split("val") else None)
    if eval_split:
        result = run.evaluate(dataset, eval_split, directory, cache_dir=cache_dir, precision=precision, batch_size=batch_size)
        meta["metrics"] = {k: result.report[k] for k in ("split", "n", "accuracy", "balanced_accuracy", "macro_f1", "log_loss", "top5_accuracy", "species_accuracy") if k in result.report}
    meta["timing"]["total_s"] = round(time.perf_counter() - started, 3)
    if directory is not None:
        run.save(directory)
    return run


def _finetune(
    model: ImageClassifier, train_set: list[Sample], val_set: list[Sample], runtime: Runtime, config: FinetuneConfig, seed: int,
    directory: Path | None, progress: Progress | None, resume_from: dict[str, Any] | None, record: dict[str, Any],
):
    """Phase 2 on ``train_set``, early-stopped on ``val_set``."""
    train_items = [(s.path, s.label) for s in train_set]
    val_items = [(s.path, s.label) for s in val_set]
    if directory is not None and world().is_main:
        directory.mkdir(parents=True, exist_ok=True)
    checkpoint = directory / "checkpoint.pt" if directory else None
    result = finetune(model, train_items, val_items, runtime, config, seed, checkpoint, progress, resume_from, record)
    if directory is not None and world().is_main:
        from .evaluate import plot_history, save_figure

        keys = list(dict.fromkeys(k for row in result.history for k in row))
        lines = [",".join(keys)] + [",".join(f"{row[k]:.6g}" if k in row else "" for k in keys) for row in result.history]
        atomic_write_bytes(directory / "history.csv", ("\n".join(lines) + "\n").encode())
        save_figure(plot_history(result.history), directory / "curves.png")
    return result


def _refit_head(
    model: ImageClassifier, fit_set: list[Sample], val_set: list[Sample], cache: FeatureCache, runtime: Runtime,
    batch_size: int | None, probe: ProbeConfig, seed: int, progress: Progress | None,
):
    """After phase 2: the probe's head fit again, on the tuned network's features of train + val.

    Phase 2 needed the validation images unseen to pick its epoch; once picked, they are labelled data
    like any other. The L2 strength is chosen on them first, as for the probe.
    """
    cb = (lambda d, t: progress("refit head", d, t)) if progress else None
    samples = fit_set + val_set
    with main_first():
        ex = extract_features(model, [s.path for s in samples], cache=cache, runtime=runtime, batch_size=batch_size, progress=cb)
    feats = {samples[i].path: row for i, row in zip(ex.ok, ex.features)}
    fit_set, val_set = [s for s in fit_set if s.path in feats], [s for s in val_set if s.path in feats]
    fit = fit_probe(*_features_and_labels(fit_set, feats), len(model.classes), *_features_and_labels(val_set, feats), probe, seed)
    model.set_head(fit.weight, fit.bias, model.classes)
    return fit


def _features_and_labels(samples: list[Sample], feats: dict[Path, torch.Tensor]) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """(N, D) features and (N,) labels of some samples, or (None, None) when there are none."""
    if not samples:
        return None, None
    return torch.stack([feats[s.path] for s in samples]), np.array([s.label for s in samples], dtype=int)


def default_run_dir(dataset: Dataset, backbone: str, root: Path = Path("runs")) -> Path:
    """``runs/<data>-<backbone>``, numbered so an earlier run is never overwritten."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{dataset.root.name}-{backbone}")
    candidate, n = root / base, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{base}-{n}"
    return candidate


def _data_record(dataset: Dataset) -> dict[str, Any]:
    return {
        "root": str(dataset.root),
        "layout": dataset.layout,
        "label": dataset.label,
        "fingerprint": dataset.fingerprint(),
        "counts": dataset.counts(),
        "skipped": len(dataset.skipped),
        "skipped_files": [{"path": str(s.path), "reason": s.reason} for s in dataset.skipped],
        "warnings": [{"path": str(w.path), "reason": w.reason} for w in dataset.warnings],
        "split_options": dataset.split_options,
    }


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

