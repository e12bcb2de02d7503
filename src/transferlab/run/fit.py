"""Training a run in named steps: split → features → head → fine-tune → evaluate → save.

Every step works on the run's own copy of the data (the caller's ``Dataset`` is left as it was), and
follows one rule: the split whose score is reported is never used to fit, refit, choose
regularisation, stop early or pick a recipe (``data.roles``).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._types import Progress
from .._version import __version__
from .._io import atomic_write_bytes
from ..data import Dataset, Sample, find_leaks
from ..data.load import settle_classes
from ..data.roles import Roles, carve, split_roles
from ..errors import ConfigError, DataError, RunError
from ..features import FeatureCache, cache_key, extract_features, pick_runtime
from ..features.runtime import Runtime
from ..models import DEFAULT_BACKBONE, ImageClassifier, create_backbone
from ..models.backbones import Weights
from ..models.confidence import DEFAULT_ACCEPT, DEFAULT_METHOD, Confidence
from .record import Phase, RunRecord, short_hash
from .run import Run
from ..train import FinetuneConfig, FinetuneResult, ProbeConfig, ProbeResult, finetune, fit_probe
from ..train.distributed import main_first, world
from ..train.finetune import Judge, check_config, resolve_judge

log = logging.getLogger(__name__)

STRATEGIES = ("probe", "finetune", "auto")
AUTO_BUDGET_S = 15 * 60.0  # what ``auto`` may spend in all when no budget is given


@dataclass
class _Setup:
    """What every step shares: the backbone, how it runs, and where features are cached."""

    name: str
    weights: Weights
    model: ImageClassifier
    arch: str
    weights_label: str | None
    runtime: Runtime
    cache_dir: Path | str | None
    batch_size: int | None
    seed: int
    progress: Progress | None

    def cache(self) -> FeatureCache:
        return FeatureCache(self.cache_dir, cache_key(self.model, self.runtime, self.model.backbone_fingerprint()))


@dataclass
class _Features:
    rows: dict[Path, torch.Tensor]  # sample path -> (D,) pooled features
    hashes: dict[Path, str]  # sample path -> short content hash
    seconds: float
    computed: int


def train(
    dataset: Dataset,
    backbone: str = DEFAULT_BACKBONE,
    strategy: str = "probe",
    *,
    weights: Weights = None,
    features: str = "pooled",
    out: Path | str | None = None,
    cache_dir: Path | str | None = None,
    seed: int = 0,
    precision: str = "auto",
    batch_size: int | None = None,
    probe: ProbeConfig = ProbeConfig(),
    finetune_config: FinetuneConfig = FinetuneConfig(),
    budget: float | None = None,
    keep_checkpoints: bool = False,
    progress: Progress | None = None,
    resume_from: dict[str, Any] | None = None,
    accept: float = DEFAULT_ACCEPT,
    ood_score: str = DEFAULT_METHOD,
    exclude: Iterable[Path | str] = (),
) -> Run:
    """Train a classifier on ``dataset`` by transfer learning from ``backbone``.

    Strategies:
        ``probe``: a softmax head on the frozen backbone's cached features, its L2 strength chosen on
        val (else by k-fold of train). Seconds once features are cached.
        ``finetune``: the probe's head, then the backbone unfrozen (``finetune_config``); validation
        images held out of train judge every epoch, the probe's head included as epoch 0, and the
        fine-tuned weights are kept only when they beat the probe clearly (``min_win_rate``).
        ``auto``: as finetune, within ``budget`` seconds (default 15 min), skipping fine-tuning when
        the probe leaves nothing to win; the run records what was tried and why the kept model won.

    ``backbone`` may join several names with ``+`` (their features concatenated; ``weights`` then maps member
    names to local files); ``features="multi"`` adds each backbone's last stages, pooled (``models.combined``).
    The score printed and saved is on the held-out split (test, else a given val); see ``data.roles``.
    The softmax temperature and the "none of these" threshold (``ood_score``, accepting ``accept`` of
    the choosing images) are fitted on the images used for choosing (``calibrate``), never on it.
    ``exclude`` leaves those files out of every split (e.g. the reviewed ``audit --fix-list``); the
    record lists them.
    Fine-tuning checkpoints (two full training states) are deleted once training ends, unless
    ``keep_checkpoints``; an interrupted run keeps them for ``resume``.

    Raises:
        DataError, BackboneError, ConfigError: problems a user can fix (one-sentence messages).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"expected strategy in {', '.join(STRATEGIES)}, got {strategy!r}")
    _check_confidence_options(accept, ood_score)
    if budget is not None and budget <= 0:
        raise ConfigError(f"expected a positive time budget, got {budget} s — pass e.g. --budget 5m")
    if strategy != "probe":
        check_config(finetune_config)  # before minutes of work, not after
    started = time.perf_counter()
    deadline = time.monotonic() + (budget or (AUTO_BUDGET_S if strategy == "auto" else float("inf")))
    torch.manual_seed(seed)
    data = copy.deepcopy(dataset)  # drops and warnings go to the run's copy
    excluded = _exclude(data, exclude)
    setup = _load_backbone(backbone, weights, features, precision, cache_dir, batch_size, seed, progress)
    backbone_s = time.perf_counter() - started
    feats = _extract(setup, data)
    roles = split_roles(data)
    if not roles.train:
        raise DataError(f"the train split of {data.root} is empty — add training images or lower --test-frac")

    tuning = strategy != "probe"
    train_set, val_set = roles.train, roles.val
    if tuning and not val_set:  # fine-tuning needs one holdout for both phases, unseen by either
        train_set, val_set = carve(roles.train, probe.val_frac, seed)
    t_head = time.perf_counter()
    head = _fit_head(setup, feats, len(data.classes), train_set, val_set, probe, refit=not tuning)
    head_s = time.perf_counter() - t_head
    setup.model.set_head(head.weight, head.bias, data.classes)
    phases = [_head_phase("head", train_set, val_set, head, feats, refit=not tuning)]

    directory = Path(out) if out is not None else None
    data_record = _data_record(data)  # (its fingerprint stats every file: once)
    if excluded:
        data_record["excluded"] = excluded
    tuned, decision = None, None
    if not tuning:
        decision = _probe_hint(head, len(train_set), finetune_config.min_win_rate)
    else:
        skip = _auto_skip(head, len(val_set), finetune_config.min_win_rate) if strategy == "auto" else None
        if skip:
            decision = skip
        else:
            spec = {"strategy": strategy, "backbone": backbone, "weights": _weights_json(weights), "features": features, "precision": precision, "batch_size": batch_size, "seed": seed,
                    "probe": asdict(probe), "data": data_record, "keep_checkpoints": keep_checkpoints}  # what resume needs
            judge = _refit_judge(setup, train_set, val_set, probe) if resolve_judge(finetune_config, len(train_set)) == "refit" and finetune_config.refit_head else None
            tuned = _finetune(setup.model, train_set, val_set, setup.runtime, finetune_config, seed, directory, progress, resume_from, spec, deadline if budget or strategy == "auto" else None, judge)
            if directory is not None and world().is_main and not tuned.interrupted and not keep_checkpoints:
                _remove_checkpoints(directory)
            phases.append(Phase("finetune", len(train_set), len(val_set), "val" if roles.val else "holdout of train", _hashes(train_set, feats), _hashes(val_set, feats)))
            decision = _decision(tuned, len(val_set))
        if finetune_config.refit_head and not (tuned and tuned.interrupted):
            head = _refit_head(setup, train_set, val_set, probe)
            phases.append(_head_phase("head refit", train_set, val_set, head, feats, refit=True))
    record = RunRecord(
        backbone={"name": backbone, "arch": setup.arch, "weights": setup.weights_label, "fingerprint": setup.model.backbone_fingerprint(), "features": features},
        strategy=strategy,
        transferlab_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        kept="finetune" if tuned is not None and tuned.best_epoch > 0 else "probe",
        decision=decision,
        hyperparameters={
            **asdict(probe), "chosen_l2": head.l2, "l2_chosen_on": head.chosen_on, "seed": seed, "precision": setup.runtime.precision, "batch_size": batch_size,
            **({"finetune": asdict(finetune_config)} if tuning else {}), **({"budget_s": budget} if budget else {}),
        },
        validation=head.val_scores,
        data=data_record,
        species=data.species,
        timing={"backbone_s": round(backbone_s, 3), "features_s": round(feats.seconds, 3), "images_computed": feats.computed, "head_s": round(head_s, 3)},
        finetune=_finetune_record(tuned, finetune_config) if tuned else None,
        phases=phases,
    )
    if tuned is not None:
        record.timing["finetune_s"] = round(sum(row.get("train_s", 0.0) for row in tuned.history), 3)
    head_saw_choose = not tuning or bool(finetune_config.refit_head and not (tuned and tuned.interrupted))
    confidence = _calibrate(setup, feats if not tuning else None, train_set, val_set, head.l2, head_saw_choose, accept, ood_score, probe.val_frac)
    run = Run(setup.model, record, confidence=confidence)
    if not world().is_main:
        return run  # under torchrun only rank 0 evaluates and writes the run directory
    if roles.report_split:
        record.metrics = _evaluate(run, data, roles, directory, setup)
    record.timing["total_s"] = round(time.perf_counter() - started, 3)
    if directory is not None:
        run.save(directory)
    return run


# -- steps ------------------------------------------------------------------------------------------
def _weights_json(weights: Weights) -> str | dict[str, str] | None:
    if isinstance(weights, Mapping):
        return {name: str(file) for name, file in weights.items()}
    return str(weights) if weights else None


def _load_backbone(name: str, weights: Weights, features: str, precision: str, cache_dir: Path | str | None, batch_size: int | None, seed: int, progress: Progress | None) -> _Setup:
    bb = create_backbone(name, weights, features)
    return _Setup(name, weights, bb.model, bb.arch, bb.weights, pick_runtime(precision=precision), cache_dir, batch_size, seed, progress)


def _features_of(setup: _Setup, samples: list[Sample], stage: str = "features"):
    """(features, the ``Extraction``) of ``samples`` with the network as it is now (cached)."""
    cb = (lambda d, t: setup.progress(stage, d, t)) if setup.progress else None
    with main_first():  # under torchrun, rank 0 fills the cache and the other ranks read it
        ex = extract_features(setup.model, [s.path for s in samples], cache=setup.cache(), runtime=setup.runtime, batch_size=setup.batch_size, progress=cb)
    hashes = {s.path: short_hash(h) for s, h in zip(samples, ex.hashes) if h}
    rows = {samples[i].path: row for i, row in zip(ex.ok, ex.features)}
    return _Features(rows, hashes, ex.seconds, ex.computed), ex


def _extract(setup: _Setup, data: Dataset) -> _Features:
    """Features of every sample (cached); files that fail to decode leave the run's copy of the data."""
    samples = data.samples
    feats, ex = _features_of(setup, samples)
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


def _exclude(data: Dataset, paths: Iterable[Path | str]) -> list[str]:
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


def _fit_head(setup: _Setup, feats: _Features, n_classes: int, train_set: list[Sample], val_set: list[Sample], probe: ProbeConfig, refit: bool) -> ProbeResult:
    if setup.progress:
        setup.progress("head", 0, 1)
    x, y = _features_and_labels(train_set, feats.rows)
    xv, yv = _features_and_labels(val_set, feats.rows)
    fit = fit_probe(x, y, n_classes, xv, yv, probe, setup.seed, refit=refit)
    if setup.progress:
        setup.progress("head", 1, 1)
    return fit


def _finetune(
    model: ImageClassifier, train_set: list[Sample], val_set: list[Sample], runtime: Runtime, config: FinetuneConfig, seed: int,
    directory: Path | None, progress: Progress | None, resume_from: dict[str, Any] | None, spec: dict[str, Any], deadline: float | None,
    judge: Judge | None = None,
) -> FinetuneResult:
    """Phase 2 on ``train_set``, judged on ``val_set``; writes history.csv and curves.png with ``directory``."""
    if directory is not None and world().is_main:
        directory.mkdir(parents=True, exist_ok=True)
    checkpoint = directory / "checkpoint.pt" if directory else None
    result = finetune(
        model, [(s.path, s.label) for s in train_set], [(s.path, s.label) for s in val_set], runtime, config, seed, checkpoint, progress, resume_from, spec, deadline,
        # auto's patience counts from the probe only when the tuned head's own verdict is what decides: on Caltech-101's
        # full-size selection splits the refitted judge kept epochs 4 and 6, after its own head had trailed the probe for 3
        probe_patience=spec.get("strategy") == "auto" and judge is None, judge=judge,
    )
    if directory is not None and world().is_main:
        from ..evaluate import plot_history, save_figure

        keys = list(dict.fromkeys(k for row in result.history for k in row))
        lines = [",".join(keys)] + [",".join(f"{row[k]:.6g}" if k in row else "" for k in keys) for row in result.history]
        atomic_write_bytes(directory / "history.csv", ("\n".join(lines) + "\n").encode())
        save_figure(plot_history(result.history), directory / "curves.png")
    return result


def _refit_judge(setup: _Setup, train_set: list[Sample], val_set: list[Sample], probe: ProbeConfig) -> Judge:
    """What ``finetune`` compares with the probe when ``judge="refit"``: the network with a head refitted by the
    probe's L-BFGS on its features of train (L2 chosen on val), scored per validation image in ``val_set``'s
    order. That is the model the run keeps, less the final refit on train + val."""

    def judge(model: ImageClassifier) -> list[tuple[bool, float]]:
        feats, _ = _features_of(setup, train_set + val_set, "judge")
        fit = _fit_head(setup, feats, len(model.classes), train_set, val_set, probe, refit=False)
        xv, yv = _features_and_labels(val_set, feats.rows)
        if xv is None or len(yv) != len(val_set):
            raise RunError("validation images could not be read again to judge the tuned network — retry, or pass --judge head")
        logits = torch.nn.functional.linear(xv.double(), fit.weight.double(), fit.bias.double())
        losses = torch.nn.functional.cross_entropy(logits, torch.as_tensor(yv), reduction="none")
        return list(zip((logits.argmax(1).numpy() == yv).tolist(), losses.tolist()))

    return judge


def _remove_checkpoints(directory: Path) -> None:
    """A finished run needs no training state: two full checkpoints are 10 times the model's size."""
    from ..train.checkpoint import previous_path

    path = directory / "checkpoint.pt"
    for name in (path, previous_path(path)):
        name.unlink(missing_ok=True)


def _refit_head(setup: _Setup, train_set: list[Sample], val_set: list[Sample], probe: ProbeConfig) -> ProbeResult:
    """The head fit again on the (possibly tuned) network's features of train + val, its L2 chosen on
    val first: phase 2 needed the validation images unseen to pick its epoch; once picked, they are
    labelled data like any other. Never the reported split."""
    feats, _ = _features_of(setup, train_set + val_set, "refit head")
    fit = _fit_head(setup, feats, len(setup.model.classes), train_set, val_set, probe, refit=True)
    setup.model.set_head(fit.weight, fit.bias, setup.model.classes)
    return fit


def _evaluate(run: Run, data: Dataset, roles: Roles, directory: Path | None, setup: _Setup) -> dict[str, Any]:
    """Score the held-out split; the record names it and says it was held out."""
    result = run.evaluate(data, roles.report_split, directory, cache_dir=setup.cache_dir, precision=setup.runtime.precision, batch_size=setup.batch_size)
    keys = ("split", "n", "accuracy", "balanced_accuracy", "macro_f1", "log_loss", "top5_accuracy", "species_accuracy", "seen_in_training", "near_copies_of_training", "unseen", "calibration", "in_distribution")
    return {**{k: result.metrics[k] for k in keys if k in result.metrics}, "held_out": True}


def _check_confidence_options(accept: float, method: str) -> None:
    from ..models.confidence import METHODS

    if not 0.0 < accept <= 1.0:
        raise ConfigError(f"expected --accept in (0, 1], the share of in-distribution images to accept, got {accept} — e.g. --accept 0.95")
    if method not in METHODS:
        raise ConfigError(f"expected --ood-score in {', '.join(METHODS)}, got {method!r}")


def _calibrate(
    setup: _Setup, feats: _Features | None, train_set: list[Sample], val_set: list[Sample], l2: float, head_saw_choose: bool, accept: float, method: str, val_frac: float,
) -> Confidence:
    """Temperature and "none of these" threshold, fitted on the choosing images (val, else a holdout of
    train: the one the probe chose its L2 on), with statistics of the fitting images; never the
    reported split. Where the run's head learnt from the choosing images, a stand-in head fitted on
    the fitting images alone gives their logits (``train.calibrate``)."""
    from ..train.calibrate import fit_confidence, stand_in_logits

    fit_set, choose_set = (train_set, val_set) if val_set else carve(train_set, val_frac, setup.seed)
    choose_name = "val" if choose_set and choose_set[0].split == "val" else "holdout of train"
    if not choose_set or not fit_set:
        log.warning("no images to calibrate on: probabilities stay raw and nothing is rejected as 'none of these'")
        return Confidence()
    if feats is None:  # the network changed (fine-tuning): its own features, cached under its fingerprint
        feats, _ = _features_of(setup, fit_set + choose_set, "calibrate")
    fit_x, fit_y = _features_and_labels(fit_set, feats.rows)
    choose_x, choose_y = _features_and_labels(choose_set, feats.rows)
    if fit_x is None or choose_x is None:
        return Confidence()
    if head_saw_choose:
        logits = stand_in_logits(fit_x, fit_y, choose_x, choose_y, len(setup.model.classes), l2, setup.seed)
    else:
        head = setup.model.head
        logits = torch.nn.functional.linear(choose_x.float(), head.weight.detach().float().cpu(), head.bias.detach().float().cpu())
    fitted_on = f"{choose_name} ({len(choose_y)} images); {method} statistics from train ({len(fit_y)} images)"
    return fit_confidence(fit_x, fit_y, choose_x, logits, choose_y, method=method, accept=accept, seed=setup.seed, fitted_on=fitted_on)


def calibrate(
    run: Run,
    dataset: Dataset,
    *,
    accept: float = DEFAULT_ACCEPT,
    ood_score: str = DEFAULT_METHOD,
    cache_dir: Path | str | None = None,
    precision: str = "auto",
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> Run:
    """The run with a new temperature and "none of these" threshold fitted on ``dataset``'s choosing
    images, as training fits them (for runs made before calibration existed, or another ``accept``).

    ``dataset`` should be the run's training data, split as it was (same seed and fractions): its
    reported split is never touched. Returns a new ``Run`` sharing the model; ``run`` is unchanged.
    """
    from .run import check_classes

    _check_confidence_options(accept, ood_score)
    if run.record.strategy == "pretrained":
        raise ConfigError("a bare backbone has no training images to calibrate on — train a run on your data first")
    check_classes(run.classes, dataset.classes, dataset.root)
    data = copy.deepcopy(dataset)
    to_run = {i: run.classes.index(c) for i, c in enumerate(data.classes)}
    data.samples = [dataclasses.replace(s, label=to_run[s.label]) for s in data.samples]
    roles = split_roles(data)
    setup = _Setup(run.record.backbone.get("name", ""), None, run.model, run.record.backbone.get("arch", ""), None, pick_runtime(precision=precision), cache_dir, batch_size,
                   int(run.record.hyperparameters.get("seed", 0)), progress)
    l2 = float(run.record.hyperparameters.get("chosen_l2", ProbeConfig().l2_grid[len(ProbeConfig().l2_grid) // 2]))
    tuned_head = run.record.kept == "finetune" and not (run.record.finetune or {}).get("head_refit", False)
    val_frac = float(run.record.hyperparameters.get("val_frac", ProbeConfig().val_frac))
    confidence = _calibrate(setup, None, roles.train, roles.val, l2, not tuned_head, accept, ood_score, val_frac)
    record = copy.deepcopy(run.record)
    record.confidence = confidence.to_record()
    return Run(run.model, record, run.directory, confidence)


# -- decisions and records --------------------------------------------------------------------------
def _probe_errors(head: ProbeResult, n_val: int) -> int | None:
    """How many of ``n_val`` validation images the probe's chosen head gets wrong (None: no score to count)."""
    chosen = next((s for s in head.val_scores if s["l2"] == head.l2), None)
    return None if chosen is None or not n_val else round((1.0 - chosen["accuracy"]) * n_val)


def _auto_skip(head: ProbeResult, n_val: int, min_win_rate: float) -> str | None:
    """Why ``auto`` does not fine-tune at all, or None.

    A fine-tuned model that got every validation image right would beat the probe in the bootstrap
    resamples that hold at least one of the probe's ``e`` errors: 1 - (1 - e/n)^n of them. When even
    that is below ``min_win_rate`` (no error: 0; one error: 0.63; two: 0.86), no fine-tuning could show
    a clear win, and minutes of training would end as the probe anyway.
    """
    errors = _probe_errors(head, n_val)
    if errors is None:
        return None
    best_case = 1.0 - (1.0 - errors / n_val) ** n_val
    if best_case >= min_win_rate:
        return None
    wrong = "is right on every validation image" if not errors else f"gets {errors} of {n_val} validation images wrong"
    return f"kept the probe: it {wrong}, so even a perfect fine-tuned model could not be shown to do better (it would win {100 * best_case:.0f}% of resamples, under the {100 * min_win_rate:.0f}% required)"


AUTO_HINT_MIN_IMAGES = 1000  # fine-tuning won clearly on all 4 dev-suite sets above this many training images
# (full size, BENCHMARKS.md; Caltech-101 in 2 seeds of 3), and in 1 of 21 runs at 300 images, where suggesting minutes of training misleads


def _probe_hint(head: ProbeResult, n_train: int, min_win_rate: float) -> str | None:
    """For a probe run: a line saying ``auto`` might do better, when the set is large enough for fine-tuning
    to have won on the development suite and the probe errs often enough for a win to be shown; else None."""
    errors = _probe_errors(head, head.judged)
    if n_train < AUTO_HINT_MIN_IMAGES or errors is None or _auto_skip(head, head.judged, min_win_rate):
        return None
    return (f"probe only; fine-tuning might do better here: the probe gets {errors} of {head.judged} validation images wrong, and fine-tuning "
            f"won clearly on all 4 development sets of over {AUTO_HINT_MIN_IMAGES:,} images — `--strategy auto` tries it within {AUTO_BUDGET_S / 60:.0f} min and keeps it only on a clear win")


def _decision(tuned: FinetuneResult, n_val: int) -> str:
    """One line: what was tried and why the kept model won."""
    epochs = len(tuned.history) - 1
    ran = f"fine-tuned {epochs} epoch(s) in {sum(r.get('train_s', 0.0) for r in tuned.history):.0f} s" + (" (time budget reached)" if tuned.over_budget else "")
    if tuned.retried_after:
        ran += (f" (after {tuned.retried_after} epoch(s) its best was below the probe in {100 * (tuned.retry_reason or 0):.0f}% of resamples: "
                f"started again from the probe at lr {tuned.retry_lr:.2g})")
    if not tuned.best_tuned_epoch:
        return f"{ran}; kept the probe: no epoch finished"
    probe, best = tuned.history[0], tuned.history[tuned.best_tuned_epoch]
    tuned_score = f"{best['val_accuracy']:.3f}" if tuned.judged_accuracy is None else f"{tuned.judged_accuracy:.3f} with its head refitted ({best['val_accuracy']:.3f} with its own)"
    versus = f"epoch {tuned.best_tuned_epoch} {tuned_score} vs the probe's {probe['val_accuracy']:.3f} on {n_val} validation images, better in {100 * (tuned.win_rate or 0):.0f}% of resamples"
    if tuned.head_win_rate is not None:
        versus += f" ({100 * tuned.head_win_rate:.0f}% with its own head)"
    kept = "kept fine-tuning" if tuned.best_epoch else "kept the probe (not a clear win)"
    return f"{ran}; {versus}: {kept}"


def _finetune_record(tuned: FinetuneResult, config: FinetuneConfig) -> dict[str, Any]:
    return {
        "head_refit": config.refit_head and not tuned.interrupted, "best_epoch": tuned.best_epoch, "best_tuned_epoch": tuned.best_tuned_epoch,
        "win_rate": tuned.win_rate, "retried_after": tuned.retried_after, "retry_reason": tuned.retry_reason, "retry_lr": tuned.retry_lr,
        "judged_accuracy": tuned.judged_accuracy, "head_win_rate": tuned.head_win_rate, "stopped_early": tuned.stopped_early, "over_budget": tuned.over_budget, "interrupted": tuned.interrupted, "history": tuned.history,
    }


def _head_phase(name: str, train_set: list[Sample], val_set: list[Sample], head: ProbeResult, feats: _Features, refit: bool) -> Phase:
    fit = train_set + val_set if refit and head.chosen_on == "val" else train_set
    if head.chosen_on == "val":  # the data's val split, or (fine-tuning) a holdout carved from train
        chosen_on = "val" if val_set and val_set[0].split == "val" else "holdout of train"
    else:
        chosen_on = f"{head.chosen_on} of train"
    choose = val_set if head.chosen_on == "val" else train_set
    return Phase(name, len(fit), len(choose), chosen_on, _hashes(fit, feats), _hashes(choose, feats))


def _hashes(samples: list[Sample], feats: _Features) -> list[str]:
    return sorted({feats.hashes[s.path] for s in samples if s.path in feats.hashes})


def _features_and_labels(samples: list[Sample], rows: dict[Path, torch.Tensor]) -> tuple[torch.Tensor | None, np.ndarray | None]:
    """(N, D) features and (N,) labels of some samples, or (None, None) when there are none."""
    samples = [s for s in samples if s.path in rows]
    if not samples:
        return None, None
    return torch.stack([rows[s.path] for s in samples]), np.array([s.label for s in samples], dtype=int)


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


# -- more entry points ------------------------------------------------------------------------------
CHECKPOINT_DEFAULTS = {"train_size_ratio": 1.0, "ema_epochs": 0.0}  # what runs checkpointed before these fields existed did


def resume(directory: Path | str, *, cache_dir: Path | str | None = None, progress: Progress | None = None) -> Run:
    """Continue an interrupted fine-tuning run from its last finished epoch (``checkpoint.pt``).

    The data, backbone and recipe are read from the checkpoint, so the result is what the uninterrupted
    run would have given.
    """
    from ..data import load_recorded
    from ..train import load_latest_checkpoint
    from ..train.checkpoint import previous_path

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
    dataset = load_recorded(data)
    excluded = data.get("excluded", [])
    check = copy.deepcopy(dataset)
    _exclude(check, excluded)
    if check.fingerprint() != data["fingerprint"]:
        raise RunError(f"the data in {data['root']} changed since this run started — retrain without --resume")
    probe = ProbeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["probe"].items()})
    return train(
        dataset, spec["backbone"], spec.get("strategy", "finetune"), weights=spec["weights"], features=spec.get("features", "pooled"), out=directory, cache_dir=cache_dir, seed=spec["seed"],
        precision=spec["precision"], batch_size=spec["batch_size"], probe=probe, finetune_config=config, keep_checkpoints=spec.get("keep_checkpoints", True),
        progress=progress, resume_from=state, exclude=excluded,
    )


def find_lr(
    dataset: Dataset,
    backbone: str = DEFAULT_BACKBONE,
    *,
    weights: Weights = None,
    features: str = "pooled",
    cache_dir: Path | str | None = None,
    seed: int = 0,
    steps: int = 60,
    finetune_config: FinetuneConfig = FinetuneConfig(),
    progress: Progress | None = None,
):
    """Learning-rate range test for fine-tuning ``backbone`` on the train split, after the probe's head.

    Returns a ``LRFind`` (learning rates, smoothed losses, suggested peak ``lr``).
    """
    from ..train.lr_find import lr_find

    run = train(dataset, backbone, "probe", weights=weights, features=features, cache_dir=cache_dir, seed=seed, progress=progress)  # phase 1
    items = [(s.path, s.label) for s in dataset.split("train")]
    return lr_find(run.model, items, pick_runtime(), finetune_config, steps=steps, seed=seed)
