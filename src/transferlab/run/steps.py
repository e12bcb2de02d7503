"""Training's steps, each one screen long: load the backbone, extract features, fit the head, fine-tune,
refit, calibrate, and the records each leaves. ``fit.train`` runs them in order.

Every step works on the run's own copy of the data, and follows one rule: the split whose score is reported is
never used to fit, refit, choose regularisation, stop early or pick a recipe (``data.roles``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_write_bytes
from .._types import Progress
from ..data import Dataset, Sample, find_leaks
from ..data.load import settle_classes
from ..data.roles import carve
from ..errors import RunError
from ..features import FeatureCache, cache_key, extract_features, pick_runtime
from ..features.runtime import Runtime
from ..features.views import view_names
from ..models import ImageClassifier, create_backbone
from ..models.confidence import Confidence
from ..train import FinetuneConfig, FinetuneResult, ProbeConfig, ProbeResult, finetune, fit_probe
from ..train.distributed import main_first, world
from ..train.finetune import Judge
from .config import TrainConfig
from .record import DataInfo, FinetuneOutcome, Phase, short_hash

log = logging.getLogger(__name__)


@dataclass
class Setup:
    """What every step shares: the recipe, the backbone, how it runs, and where features are cached."""

    config: TrainConfig
    model: ImageClassifier
    arch: str
    weights_label: str | None
    runtime: Runtime
    cache_dir: Path | str | None
    progress: Progress | None
    deadline: float | None = None  # a ``time.monotonic()`` time by which fine-tuning must end (the budget)

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def batch_size(self) -> int | None:
        return self.config.batch_size

    def cache(self) -> FeatureCache:
        return FeatureCache(self.cache_dir, cache_key(self.model, self.runtime, self.model.backbone_fingerprint()))


@dataclass
class Features:
    rows: dict[Path, torch.Tensor]  # sample path -> (D,) pooled features
    hashes: dict[Path, str]  # sample path -> short content hash
    seconds: float
    computed: int


@dataclass
class Views:
    """Features of extra views (``features.views``) of some samples, for the head's extra rows."""

    rows: dict[str, dict[Path, torch.Tensor]]  # view name -> sample path -> (D,) pooled features
    seconds: float
    computed: int  # images run through the network (cache misses), all views together


def load_backbone(config: TrainConfig, cache_dir: Path | str | None, progress: Progress | None, deadline: float | None = None) -> Setup:
    bb = create_backbone(config.backbone, config.weights, config.features)
    return Setup(config, bb.model, bb.arch, bb.weights, pick_runtime(precision=config.precision), cache_dir, progress, deadline)


def features_of(setup: Setup, samples: list[Sample], stage: str = "features"):
    """(features, the ``Extraction``) of ``samples`` with the network as it is now (cached)."""
    cb = (lambda d, t: setup.progress(stage, d, t)) if setup.progress else None
    with main_first():  # under torchrun, rank 0 fills the cache and the other ranks read it
        ex = extract_features(setup.model, [s.path for s in samples], cache=setup.cache(), runtime=setup.runtime, batch_size=setup.batch_size, progress=cb)
    hashes = {s.path: short_hash(h) for s, h in zip(samples, ex.hashes) if h}
    rows = {samples[i].path: row for i, row in zip(ex.ok, ex.features)}
    return Features(rows, hashes, ex.seconds, ex.computed), ex


def extract_views(setup: Setup, samples: list[Sample], n: int) -> Views | None:
    """Features of the first ``n`` extra views of ``samples`` with the network as it is now (cached per view);
    None for ``n`` 0."""
    rows: dict[str, dict[Path, torch.Tensor]] = {}
    seconds, computed = 0.0, 0
    for name in view_names(n):
        cb = (lambda d, t, stage=f"view {name}": setup.progress(stage, d, t)) if setup.progress else None
        with main_first():
            ex = extract_features(setup.model, [s.path for s in samples], cache=setup.cache(), runtime=setup.runtime, batch_size=setup.batch_size, progress=cb, view=name)
        rows[name] = {samples[i].path: row for i, row in zip(ex.ok, ex.features)}
        seconds, computed = seconds + ex.seconds, computed + ex.computed
    return Views(rows, seconds, computed) if rows else None


def view_rows(samples: list[Sample], rows: dict[Path, torch.Tensor], views: Views) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """The views of ``samples`` as ``fit_probe``'s extra rows: (M, D) features and (M,) the row of each one's
    photo among those of ``samples`` that have features (``features_and_labels``'s order)."""
    position = {s.path: i for i, s in enumerate(s for s in samples if s.path in rows)}
    x, of = [], []
    for per_path in views.rows.values():
        for path, i in position.items():
            if path in per_path:
                x.append(per_path[path])
                of.append(i)
    return (torch.stack(x), np.array(of, dtype=int)) if x else (None, None)


def extract(setup: Setup, data: Dataset) -> Features:
    """Features of every sample (cached); files that fail to decode leave the run's copy of the data."""
    samples = data.samples
    feats, ex = features_of(setup, samples)
    hashes = {s.path: h for s, h in zip(samples, ex.hashes) if h}
    if ex.failed:
        data.drop(ex.failed)
        settle_classes(data)  # a class may have lost its last usable images
        log.warning("skipped %d files that could not be decoded", len(ex.failed))
    leaks = find_leaks(data, hashes)
    if leaks:
        data.warnings.extend(leaks)
        log.warning("%d image(s) appear in two splits (train/test leakage); the run's data record lists the pairs", len(leaks))
    return feats


def exclude(data: Dataset, paths: Iterable[Path | str]) -> list[str]:
    """Leave ``paths`` out of the run's copy of the data; returns those that were in it."""
    wanted = {Path(p).absolute() for p in paths}
    if not wanted:
        return []
    gone = sorted(str(s.path) for s in data.samples if s.path in wanted)
    data.samples = [s for s in data.samples if s.path not in wanted]
    if len(gone) < len(wanted):
        log.warning("%d of the %d excluded paths are not images of this dataset (nothing to leave out for them)", len(wanted) - len(gone), len(wanted))
    settle_classes(data)  # a class may have lost its last images
    return gone


def fit_head(
    setup: Setup, feats: Features, n_classes: int, train_set: list[Sample], val_set: list[Sample], probe: ProbeConfig, refit: bool, views: Views | None = None,
) -> ProbeResult:
    """The probe on ``train_set``, its L2 chosen on ``val_set`` (else on a holdout of train); ``views``: extra
    rows, each on the side of the choice its photo is on (views of validation photos fit only in the refit)."""
    if setup.progress:
        setup.progress("head", 0, 1)
    x, y = features_and_labels(train_set, feats.rows)
    xv, yv = features_and_labels(val_set, feats.rows)
    x_extra, extra_of = view_rows(train_set + val_set, feats.rows, views) if views is not None else (None, None)
    fit = fit_probe(x, y, n_classes, xv, yv, probe, setup.seed, refit=refit, x_extra=x_extra, extra_of=extra_of)
    if setup.progress:
        setup.progress("head", 1, 1)
    return fit


def run_finetune(
    setup: Setup, train_set: list[Sample], val_set: list[Sample], directory: Path | None, *,
    resume_from: dict[str, Any] | None, checkpoint_extra: dict[str, Any], judge: Judge | None = None,
) -> FinetuneResult:
    """Phase 2 on ``train_set``, judged on ``val_set``; writes history.csv and curves.png with ``directory``.
    ``checkpoint_extra`` goes into every checkpoint (what ``resume`` reads back)."""
    if directory is not None and world().is_main:
        directory.mkdir(parents=True, exist_ok=True)
    checkpoint = directory / "checkpoint.pt" if directory else None
    config = setup.config
    result = finetune(
        setup.model, [(s.path, s.label) for s in train_set], [(s.path, s.label) for s in val_set], setup.runtime, config.finetune, config.seed, checkpoint,
        setup.progress, resume_from, checkpoint_extra, setup.deadline,
        # auto's patience counts from the probe only when the tuned head's own verdict is what decides: on Caltech-101's
        # full-size selection splits the refitted judge kept epochs 4 and 6, after its own head had trailed the probe for 3
        probe_patience=config.strategy == "auto" and judge is None, judge=judge,
    )
    if directory is not None and world().is_main:
        from ..evaluate import plot_history, save_figure

        keys = list(dict.fromkeys(k for row in result.history for k in row))
        lines = [",".join(keys)] + [",".join(f"{row[k]:.6g}" if k in row else "" for k in keys) for row in result.history]
        atomic_write_bytes(directory / "history.csv", ("\n".join(lines) + "\n").encode())
        save_figure(plot_history(result.history), directory / "curves.png")
    return result


def refit_judge(setup: Setup, train_set: list[Sample], val_set: list[Sample], probe: ProbeConfig) -> Judge:
    """What ``finetune`` compares with the probe when ``judge="refit"``: the network with a head refitted by the
    probe's L-BFGS on its features of train (L2 chosen on val), scored per validation image in ``val_set``'s
    order. That is the model the run keeps, less the final refit on train + val."""

    def judge(model: ImageClassifier) -> list[tuple[bool, float]]:
        feats, _ = features_of(setup, train_set + val_set, "judge")
        fit = fit_head(setup, feats, len(model.classes), train_set, val_set, probe, refit=False)
        xv, yv = features_and_labels(val_set, feats.rows)
        if xv is None or len(yv) != len(val_set):
            raise RunError("validation images could not be read again to judge the tuned network — retry, or pass --judge head")
        logits = torch.nn.functional.linear(xv.double(), fit.weight.double(), fit.bias.double())
        losses = torch.nn.functional.cross_entropy(logits, torch.as_tensor(yv), reduction="none")
        return list(zip((logits.argmax(1).numpy() == yv).tolist(), losses.tolist()))

    return judge


def remove_checkpoints(directory: Path) -> None:
    """A finished run needs no training state: two full checkpoints are 10 times the model's size."""
    from ..train.checkpoint import previous_path

    path = directory / "checkpoint.pt"
    for name in (path, previous_path(path)):
        name.unlink(missing_ok=True)


def refit_head(setup: Setup, train_set: list[Sample], val_set: list[Sample], probe: ProbeConfig) -> ProbeResult:
    """The head fit again on the (possibly tuned) network's features of train + val, its L2 chosen on
    val first: phase 2 needed the validation images unseen to pick its epoch; once picked, they are
    labelled data like any other. Never the reported split."""
    feats, _ = features_of(setup, train_set + val_set, "refit head")
    views = extract_views(setup, train_set + val_set, setup.config.views)  # of the tuned network
    fit = fit_head(setup, feats, len(setup.model.classes), train_set, val_set, probe, refit=True, views=views)
    setup.model.set_head(fit.weight, fit.bias, setup.model.classes)
    return fit


def fit_calibration(setup: Setup, feats: Features | None, train_set: list[Sample], val_set: list[Sample], l2: float, head_saw_choose: bool) -> Confidence:
    """Temperature and "none of these" threshold, fitted on the choosing images (val, else a holdout of
    train: the one the probe chose its L2 on), with statistics of the fitting images; never the
    reported split. Where the run's head learnt from the choosing images, a stand-in head fitted on
    the fitting images alone gives their logits (``train.calibrate``)."""
    from ..train.calibrate import fit_confidence, stand_in_logits

    method, accept = setup.config.ood_score, setup.config.accept
    fit_set, choose_set = (train_set, val_set) if val_set else carve(train_set, setup.config.probe.val_frac, setup.seed)
    choose_name = "val" if choose_set and choose_set[0].split == "val" else "holdout of train"
    if not choose_set or not fit_set:
        log.warning("no images to calibrate on: probabilities stay raw and nothing is rejected as 'none of these'")
        return Confidence()
    if feats is None:  # the network changed (fine-tuning): its own features, cached under its fingerprint
        feats, _ = features_of(setup, fit_set + choose_set, "calibrate")
    fit_x, fit_y = features_and_labels(fit_set, feats.rows)
    choose_x, choose_y = features_and_labels(choose_set, feats.rows)
    if fit_x is None or choose_x is None:
        return Confidence()
    weight, bias = setup.model.head.weight.detach().float().cpu(), setup.model.head.bias.detach().float().cpu()
    if head_saw_choose:
        logits = stand_in_logits(fit_x, fit_y, choose_x, choose_y, len(setup.model.classes), l2, setup.seed, (weight, bias))
    else:
        logits = torch.nn.functional.linear(choose_x.float(), weight, bias)
    fitted_on = f"{choose_name} ({len(choose_y)} images); {method} statistics from train ({len(fit_y)} images)"
    return fit_confidence(fit_x, fit_y, choose_x, logits, choose_y, method=method, accept=accept, seed=setup.seed, fitted_on=fitted_on)


def finetune_outcome(tuned: FinetuneResult, config: FinetuneConfig) -> FinetuneOutcome:
    return FinetuneOutcome(
        head_refit=config.refit_head and not tuned.interrupted, best_epoch=tuned.best_epoch, best_tuned_epoch=tuned.best_tuned_epoch,
        win_rate=tuned.win_rate, retried_after=tuned.retried_after, retry_reason=tuned.retry_reason, retry_lr=tuned.retry_lr,
        judged_accuracy=tuned.judged_accuracy, head_win_rate=tuned.head_win_rate, stopped_early=tuned.stopped_early, over_budget=tuned.over_budget,
        interrupted=tuned.interrupted, history=tuned.history,
    )


def head_phase(name: str, train_set: list[Sample], val_set: list[Sample], head: ProbeResult, feats: Features, refit: bool) -> Phase:
    fit = train_set + val_set if refit and head.chosen_on == "val" else train_set
    if head.chosen_on == "val":  # the data's val split, or (fine-tuning) a holdout carved from train
        chosen_on = "val" if val_set and val_set[0].split == "val" else "holdout of train"
    else:
        chosen_on = f"{head.chosen_on} of train"
    choose = val_set if head.chosen_on == "val" else train_set
    return Phase(name, len(fit), len(choose), chosen_on, hashes_of(fit, feats), hashes_of(choose, feats))


def hashes_of(samples: list[Sample], feats: Features) -> list[str]:
    return sorted({feats.hashes[s.path] for s in samples if s.path in feats.hashes})


def features_and_labels(samples: list[Sample], rows: dict[Path, torch.Tensor]) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """(N, D) features and (N,) labels of some samples, or (None, None) when there are none."""
    samples = [s for s in samples if s.path in rows]
    if not samples:
        return None, None
    return torch.stack([rows[s.path] for s in samples]), np.array([s.label for s in samples], dtype=int)


def data_record(dataset: Dataset, excluded: list[str]) -> DataInfo:
    """The run's data as its record keeps it (its fingerprint stats every file: call once)."""
    return DataInfo(
        root=str(dataset.root), layout=dataset.layout, label=dataset.label, fingerprint=dataset.fingerprint(), counts=dataset.counts(),
        skipped=len(dataset.skipped), skipped_files=[{"path": str(s.path), "reason": s.reason} for s in dataset.skipped],
        warnings=[{"path": str(w.path), "reason": w.reason} for w in dataset.warnings], split_options=dataset.split_options, excluded=excluded or None,
    )


