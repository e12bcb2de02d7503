"""Training a run: ``train`` runs the named steps (``run.steps``) in order: split → features → head →
fine-tune → calibrate → evaluate → save; ``calibrate`` and ``resume`` redo a part of it for an existing run.

Every step works on the run's own copy of the data (the caller's ``Dataset`` is left as it was), and
follows one rule: the split whose score is reported is never used to fit, refit, choose
regularisation, stop early or pick a recipe (``data.roles``).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from .._html import notebook_progress
from .._types import Progress
from .._version import __version__
from ..data import Dataset, Sample
from ..data.roles import Roles, carve, split_roles
from ..errors import ConfigError, DataError, RunError
from ..features import pick_runtime
from ..models import DEFAULT_BACKBONE
from ..models.defaults import DEFAULT_FEATURES
from ..models.backbones import Weights
from ..models.confidence import Confidence
from ..train import FinetuneConfig, FinetuneResult, ProbeResult
from ..train.distributed import world
from ..train.finetune import check_config, resolve_judge
from . import choose, decisions, steps, store
from .config import AUTO_BUDGET_S, STRATEGIES, TrainConfig, config_from  # noqa: F401  (0.1 found these names here)
from .record import BackboneInfo, DataInfo, Phase, RunRecord, Timing, checkpoint_run
from .evaluation import check_classes
from .run import Run

CHECKPOINT_FILE = "checkpoint.pt"


@dataclass
class _Fitted:
    """What the phases leave for the record: the head, phase 2's result, and the images each phase used."""

    head: ProbeResult
    phases: list[Phase]
    head_s: float
    train_set: list[Sample]  # the images the head learnt from
    val_set: list[Sample]  # the images that chose (val, or a holdout of train when fine-tuning without one)
    tuned: FinetuneResult | None = None
    decision: str | None = None
    views: steps.Views | None = None  # the head's extra views (``TrainConfig.views``)


def train(
    dataset: Dataset,
    config: TrainConfig | str | None = None,
    strategy: str | None = None,
    *,
    out: Path | str | None = None,
    cache_dir: Path | str | None = None,
    progress: Progress | None = None,
    resume_from: dict[str, Any] | None = None,
    **settings: Any,
) -> Run:
    """Train a classifier on ``dataset`` by transfer learning, following ``config`` (a ``TrainConfig``; its
    docstring says what each strategy does).

    ``settings`` are ``TrainConfig`` fields by name, applied to ``config``: ``tl.train(ds, backbone=
    "efficientnet_lite1", strategy="auto", budget="10m")``. 0.1's ``tl.train(ds, BACKBONE, STRATEGY)``
    and ``finetune_config=`` still work. The score printed and saved is on the held-out split (test, else
    a given val; ``data.roles``); the temperature and the "none of these" threshold are fitted on the
    images used for choosing, never on it.

    In a Jupyter notebook without ``progress``, progress bars (elsewhere nothing is printed).

    With ``out``: one folder, one run. A folder that already holds a run is replaced whole once the new run
    is written (nothing of the old one stays: its curves, evaluations, checkpoints); until then it keeps
    the old run, and the old run stays if training fails. ``resume`` continues the run in place.

    Raises:
        DataError, BackboneError, ConfigError: problems a user can fix (one-sentence messages).
        BusyError: another process is writing ``out``.
    """
    config = choose.resolve(config_from(config, {**settings, **({"strategy": strategy} if strategy else {})}))
    progress = notebook_progress(progress)
    if config.tuning:
        check_config(config.finetune)  # before minutes of work, not after
    main = world().is_main  # under torchrun only rank 0 writes, so only it holds the folder
    with store.new_run(out if main else None, continuing=resume_from is not None) as work:
        run = _train(dataset, config, work if main or out is None else Path(out), cache_dir, progress, resume_from)
    if out is not None and run.directory is not None:
        run.directory = Path(out)  # it was written into a sibling, swapped in since
    return run


def _train(dataset: Dataset, config: TrainConfig, directory: Path | None, cache_dir: Path | str | None, progress: Progress | None, resume_from: dict[str, Any] | None) -> Run:
    """``train`` writing into ``directory`` (the final folder, or the sibling that will replace it)."""
    started = time.perf_counter()
    limit = config.deadline_s()
    deadline = time.monotonic() + limit if limit is not None else None
    torch.manual_seed(config.seed)
    data = copy.deepcopy(dataset)  # drops and warnings go to the run's copy
    excluded = steps.exclude(data, config.exclude)
    choice = choose.choose_backbone(data, config, cache_dir, progress, deadline) if config.backbone == choose.AUTO else None
    if choice is not None:
        config = config.replace(backbone=choice.backbone, features=choice.features)
    setup = steps.load_backbone(config, cache_dir, progress, deadline)
    timing = Timing(backbone_s=round(time.perf_counter() - started, 3))
    feats = steps.extract(setup, data)
    roles = split_roles(data)
    if not roles.train:
        raise DataError(f"the train split of {data.root} is empty — add training images or lower --test-frac")
    data_info = steps.data_record(data, excluded)
    fitted = _fit(setup, data.classes, roles, feats, directory, data_info, resume_from)
    timing.features_s, timing.images_computed, timing.head_s = round(feats.seconds, 3), feats.computed, round(fitted.head_s, 3)
    if fitted.views is not None:  # the extra views' features, apart from the plain ones' (their cost per view)
        timing.extra.update(views=list(fitted.views.rows), views_s=round(fitted.views.seconds, 3), view_images_computed=fitted.views.computed)
    record = _record(setup, data, data_info, fitted, timing)
    if choice is not None:
        record.choice = choice.to_dict()
        record.decision = "; ".join(filter(None, [choice.line(), record.decision]))
    run = Run(setup.model, record, confidence=_confidence(setup, feats, fitted))
    if not world().is_main:
        return run  # under torchrun only rank 0 evaluates and writes the run directory
    if roles.report_split:
        record.metrics = _evaluate(run, data, roles, directory, setup)
    record.timing.total_s = round(time.perf_counter() - started, 3)
    if directory is not None:
        run.save(directory)
    return run


def _sets(roles: Roles, config: TrainConfig) -> tuple[list[Sample], list[Sample]]:
    """(the images that fit, the images that choose): fine-tuning needs one holdout for both phases, unseen by either."""
    if config.tuning and not roles.val:
        return carve(roles.train, config.probe.val_frac, config.seed)
    return roles.train, roles.val


def _fit(setup: steps.Setup, classes: list[str], roles: Roles, feats: steps.Features, directory: Path | None, data: DataInfo, resume_from: dict[str, Any] | None) -> _Fitted:
    """Phase 1 (the head), then for finetune/auto phase 2 and the head refit; the decision line either way."""
    config = setup.config
    train_set, val_set = _sets(roles, config)
    views = steps.extract_views(setup, train_set + val_set, config.views)
    t_head = time.perf_counter()
    head = steps.fit_head(setup, feats, len(classes), train_set, val_set, config.probe, refit=not config.tuning, views=views)
    fitted = _Fitted(head, [steps.head_phase("head", train_set, val_set, head, feats, refit=not config.tuning)], time.perf_counter() - t_head, train_set, val_set, views=views)
    setup.model.set_head(head.weight, head.bias, classes)
    if not config.tuning:
        fitted.decision = decisions.probe_hint(head, len(train_set), config.finetune.min_win_rate)
        return fitted
    if config.strategy == "auto":
        fitted.decision = decisions.auto_small(len(train_set)) or decisions.auto_skip(head, len(val_set), config.finetune.min_win_rate)
    if not fitted.decision:
        _tune(setup, fitted, feats, train_set, val_set, directory, {"train_config": config.to_dict(), "data": data.to_dict()}, resume_from)
    if config.finetune.refit_head and not (fitted.tuned and fitted.tuned.interrupted):
        fitted.head = steps.refit_head(setup, train_set, val_set, config.probe)
        fitted.phases.append(steps.head_phase("head refit", train_set, val_set, fitted.head, feats, refit=True))
    return fitted


def _tune(setup: steps.Setup, fitted: _Fitted, feats: steps.Features, train_set: list[Sample], val_set: list[Sample], directory: Path | None,
          checkpoint_extra: dict[str, Any], resume_from: dict[str, Any] | None) -> None:
    """Phase 2: fine-tune within the budget, judged against the probe; the checkpoints go once it ends."""
    config = setup.config
    refit_judge = resolve_judge(config.finetune, len(train_set)) == "refit" and config.finetune.refit_head
    judge = steps.refit_judge(setup, train_set, val_set, config.probe) if refit_judge else None
    tuned = steps.run_finetune(setup, train_set, val_set, directory, resume_from=resume_from, checkpoint_extra=checkpoint_extra, judge=judge)
    if directory is not None and world().is_main and not tuned.interrupted and not config.keep_checkpoints:
        steps.remove_checkpoints(directory)
    choose_from = "val" if val_set and val_set[0].split == "val" else "holdout of train"
    fitted.phases.append(Phase("finetune", len(train_set), len(val_set), choose_from, steps.hashes_of(train_set, feats), steps.hashes_of(val_set, feats)))
    fitted.tuned, fitted.decision = tuned, decisions.decision(tuned, len(val_set))


def _record(setup: steps.Setup, data: Dataset, data_info: DataInfo, fitted: _Fitted, timing: Timing) -> RunRecord:
    config, head, tuned = setup.config, fitted.head, fitted.tuned
    if tuned is not None:
        timing.finetune_s = round(sum(row.get("train_s", 0.0) for row in tuned.history), 3)
    hyperparameters = {  # what runs before the saved config recorded, still written for the readers of those files
        **dataclasses.asdict(config.probe), "chosen_l2": head.l2, "l2_chosen_on": head.chosen_on, "seed": config.seed, "precision": setup.runtime.precision,
        "batch_size": config.batch_size, **({"finetune": dataclasses.asdict(config.finetune)} if config.tuning else {}), **({"budget_s": config.budget} if config.budget else {}),
    }
    return RunRecord(
        backbone=BackboneInfo(config.backbone, setup.arch, setup.weights_label, setup.model.backbone_fingerprint(), config.features),
        strategy=config.strategy,
        transferlab_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        kept="finetune" if tuned is not None and tuned.best_epoch > 0 else "probe",
        decision=fitted.decision,
        config=config,
        hyperparameters=hyperparameters,
        validation=head.val_scores,
        data=data_info,
        species=data.species,
        timing=timing,
        finetune=steps.finetune_outcome(tuned, config.finetune) if tuned else None,
        phases=fitted.phases,
    )


def _confidence(setup: steps.Setup, feats: steps.Features, fitted: _Fitted) -> Confidence:
    """The run's temperature and threshold; the probe's features serve unless fine-tuning changed the network."""
    config = setup.config
    head_saw_choose = not config.tuning or bool(config.finetune.refit_head and not (fitted.tuned and fitted.tuned.interrupted))
    return steps.fit_calibration(setup, feats if not config.tuning else None, fitted.train_set, fitted.val_set, fitted.head.l2, head_saw_choose)


def _evaluate(run: Run, data: Dataset, roles: Roles, directory: Path | None, setup: steps.Setup) -> dict[str, Any]:
    """Score the held-out split; the record names it and says it was held out."""
    result = run.evaluate(data, roles.report_split, directory, cache_dir=setup.cache_dir, precision=setup.runtime.precision, batch_size=setup.batch_size)
    keys = ("split", "n", "accuracy", "balanced_accuracy", "macro_f1", "log_loss", "top5_accuracy", "species_accuracy", "seen_in_training", "near_copies_of_training", "unseen", "calibration", "in_distribution")
    return {**{k: result.metrics[k] for k in keys if k in result.metrics}, "held_out": True}


# -- more entry points ------------------------------------------------------------------------------
def calibrate(
    run: Run,
    dataset: Dataset,
    *,
    accept: float | None = None,
    ood_score: str | None = None,
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
    record = run.record
    changes = {k: v for k, v in {"accept": accept, "ood_score": ood_score}.items() if v is not None}
    config = TrainConfig(precision=precision, batch_size=batch_size, seed=record.train_config.seed, probe=record.train_config.probe).replace(**changes)
    if record.strategy == "pretrained":
        raise ConfigError("a bare backbone has no training images to calibrate on — train a run on your data first")
    check_classes(run.classes, dataset.classes, dataset.root)
    data = copy.deepcopy(dataset)
    to_run = {i: run.classes.index(c) for i, c in enumerate(data.classes)}
    data.samples = [dataclasses.replace(s, label=to_run[s.label]) for s in data.samples]
    roles = split_roles(data)
    setup = steps.Setup(config, run.model, record.backbone.arch, None, pick_runtime(precision=precision), cache_dir, progress)
    tuned_head = record.kept == "finetune" and not record.head_refit
    confidence = steps.fit_calibration(setup, None, roles.train, roles.val, record.chosen_l2, not tuned_head)
    record = copy.deepcopy(record)
    record.confidence = confidence.to_record()
    return Run(run.model, record, run.directory, confidence)


def resume(directory: Path | str, *, cache_dir: Path | str | None = None, progress: Progress | None = None) -> Run:
    """Continue an interrupted fine-tuning run from its last finished epoch (``checkpoint.pt``).

    The data, backbone and recipe are read from the checkpoint, so the result is what the uninterrupted
    run would have given.
    """
    from ..data import load_recorded
    from ..train import load_latest_checkpoint
    from ..train.checkpoint import previous_path

    directory = Path(directory)
    path = directory / CHECKPOINT_FILE
    if not path.is_file() and not previous_path(path).is_file():
        raise RunError(f"{str(directory)!r} has no checkpoint.pt to resume from — only fine-tuning runs write one")
    try:
        state, used = load_latest_checkpoint(path)  # a damaged newest checkpoint falls back to the previous epoch's
    except RunError as err:
        raise RunError(f"cannot resume: {err}") from err
    try:
        config, data = checkpoint_run(state)
    except (KeyError, TypeError, ConfigError) as err:
        raise RunError(f"cannot resume from {used} ({type(err).__name__}: {err}) — retrain without --resume") from err
    dataset = load_recorded(data)
    check = copy.deepcopy(dataset)
    steps.exclude(check, config.exclude)
    if check.fingerprint() != data.fingerprint:
        raise RunError(f"the data in {data.root} changed since this run started — retrain without --resume")
    return train(dataset, config, out=directory, cache_dir=cache_dir, progress=progress, resume_from=state)


def find_lr(
    dataset: Dataset,
    backbone: str = DEFAULT_BACKBONE,
    *,
    weights: Weights = None,
    features: str = DEFAULT_FEATURES,
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
