"""Fine-tuning: the backbone unfrozen (all of it or its last K stages) after the probe has trained the
head, so large early errors never reach the pretrained filters.

Layer-wise learning-rate decay (timm's optimizer factory), AdamW, warm-up + cosine, label smoothing,
dropout before the head, gradient clipping, BatchNorm statistics frozen (all, or in frozen stages),
MixUp/CutMix, early stopping on validation accuracy (then loss); the best epoch's weights are what the
run keeps. The probe's own validation score is recorded as epoch 0 for comparison. A checkpoint is
written atomically at the end of every epoch, and a run continues from it exactly (``resume``).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._types import Progress
from ..data.augment import train_size, train_transform
from ..features.runtime import Runtime
from ..models.classifier import ImageClassifier
from ..models.state import device_of, preserved
from .depthwise import fp32_depthwise_backward
from .checkpoint import load_checkpoint, save_checkpoint  # noqa: F401  (load_checkpoint: public here too)
from .distributed import World, all_gather_lists, all_reduce_sums, world
from .device_loader import device_loaders
from .loader import ImageFiles, make_loader
from ..errors import ConfigError
from .config import JUDGE_REFIT_MIN_IMAGES, JUDGES, MIXES, OPTIMIZERS, SCHEDULES, FinetuneConfig

log = logging.getLogger(__name__)

VAL_IN_MEMORY_BYTES = 512 * 2**20  # validation images (uint8, eval transform) kept decoded up to this size
Judge = Callable[[ImageClassifier], list[tuple[bool, float]]]  # scores a network on val: per image (correct, loss), in val's order
RETRY_WHEN = 0.9  # ``retry_lr``: the probe must beat the best tuned epoch in this share of validation resamples


@dataclass
class FinetuneResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch, epoch 0 the probe's head
    best_epoch: int = 0  # the epoch whose weights were kept (0: the probe's, unchanged)
    stopped_early: bool = False  # early stopping (or the time budget) ended it before config.epochs
    interrupted: bool = False  # Ctrl-C ended it; resume from the checkpoint
    over_budget: bool = False  # the time budget ended it
    win_rate: float | None = None  # share of validation resamples in which the best epoch beat epoch 0
    best_tuned_epoch: int = 0  # the best epoch after 0, whether kept or not (0: none ran)
    retried_after: int = 0  # the epoch after which training started again from the probe at a lower rate (0: never)
    retry_reason: float | None = None  # share of validation resamples in which the probe beat the first schedule's best epoch
    retry_lr: float | None = None  # the peak learning rate it started again at
    judged_accuracy: float | None = None  # validation accuracy of the best tuned epoch as ``judge`` scored it (None: its own head)
    head_win_rate: float | None = None  # with a ``judge``: the win rate the best epoch had with its own head (None: no judge ran)


def resolve_judge(config: FinetuneConfig, n_train: int) -> str:
    """"head" or "refit": what compares the best tuned epoch with the probe for a run on ``n_train`` images."""
    if config.judge == "auto":
        return "refit" if n_train >= JUDGE_REFIT_MIN_IMAGES else "head"
    return config.judge


def check_config(config: FinetuneConfig) -> None:
    """Raise ConfigError for a recipe value outside what fine-tuning supports."""
    _check_choices(config)
    train_size((224, 224), config.train_size_ratio)  # raises on a ratio outside (0, 2]
    _check_ranges(config)


def _check_choices(config: FinetuneConfig) -> None:
    if config.optimizer not in OPTIMIZERS:
        raise ConfigError(f"expected optimizer in {OPTIMIZERS}, got {config.optimizer!r}")
    if config.schedule not in SCHEDULES:
        raise ConfigError(f"expected schedule in {SCHEDULES}, got {config.schedule!r}")
    if config.mix not in MIXES:
        raise ConfigError(f"expected mix in {MIXES}, got {config.mix!r}")
    if config.bn_stats not in ("frozen", "train"):
        raise ConfigError(f"expected bn_stats 'frozen' or 'train', got {config.bn_stats!r}")
    if config.judge not in JUDGES:
        raise ConfigError(f"expected judge in {JUDGES}, got {config.judge!r}")
    if config.unfreeze != "all" and not (config.unfreeze.isdigit() and int(config.unfreeze) > 0):
        raise ConfigError(f"expected unfreeze 'all' or a positive number of stages, got {config.unfreeze!r}")


def _check_ranges(config: FinetuneConfig) -> None:
    if config.ema_epochs < 0:
        raise ConfigError(f"expected ema_epochs >= 0 (0 disables the weight average), got {config.ema_epochs!r}")
    if config.retry_lr < 0 or config.retry_lr >= 1:
        raise ConfigError(f"expected retry_lr in [0, 1) (0 never retries; 0.1 retries at a tenth of the rate), got {config.retry_lr!r}")
    if config.l2sp < 0:
        raise ConfigError(f"expected l2sp >= 0 (0 turns the pull towards the pretrained weights off), got {config.l2sp!r}")
    if not 0.0 <= config.min_win_rate <= 1.0:
        raise ConfigError(f"expected min_win_rate in [0, 1], got {config.min_win_rate!r}")


def frozen_modules(net: nn.Module, unfreeze: str) -> list[nn.Module]:
    """Freeze all but the last K stages (timm's coarse layer groups; the head always learns).

    Returns the modules whose parameters are frozen, so their BatchNorm layers can stay in eval mode.
    """
    from timm.models import group_modules

    if unfreeze == "all":
        return []
    groups = group_modules(net, net.group_matcher(coarse=True))  # {group id: [module names]}, head last
    order = sorted(groups)
    keep = set(order[-(int(unfreeze) + 1):])  # +1: the head's own group
    frozen = [net.get_submodule(name) for gid in order if gid not in keep for name in groups[gid]]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def make_optimizer(net: nn.Module, config: FinetuneConfig, lr: float) -> torch.optim.Optimizer:
    """timm's optimizer factory with layer-wise decay; each group starts at ``lr`` x its ``lr_scale``.

    timm records the per-stage factor as ``lr_scale`` for its own schedulers to apply; with torch's
    schedulers it must be applied to the group's learning rate here.
    """
    from timm.optim import create_optimizer_v2

    optimizer = create_optimizer_v2(net, opt=config.optimizer, lr=lr, weight_decay=config.weight_decay, layer_decay=config.layer_decay)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return optimizer


def lr_lambda(config: FinetuneConfig, steps_per_epoch: int) -> Callable[[int], float]:
    total = max(1, config.epochs * steps_per_epoch)
    warmup = int(config.warmup_epochs * steps_per_epoch)

    def cosine(start: float, end: float, t: float) -> float:
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    def factor(step: int) -> float:
        if config.schedule == "onecycle":  # Smith's one-cycle as torch's OneCycleLR / fastai shape it:
            # cosine up from peak/25 over the warm-up, then cosine down to peak/25e4 (momentum not cycled)
            if step < warmup:
                return cosine(1 / 25, 1.0, step / warmup)
            return cosine(1.0, 1 / 25e4, (step - warmup) / max(1, total - warmup))
        if step < warmup:
            return (step + 1) / warmup
        if config.schedule == "constant":
            return 1.0
        return cosine(1.0, 0.0, (step - warmup) / max(1, total - warmup))

    return factor


def set_train_mode(model: ImageClassifier, frozen: Sequence[nn.Module], bn_stats: str = "train") -> None:
    """Train mode for learning, except the frozen stages (and every BatchNorm when ``bn_stats`` is "frozen"),
    whose running statistics stay as pretrained."""
    model.train()
    for module in frozen:
        module.eval()  # BatchNorm running statistics stay as pretrained in frozen stages
    if bn_stats == "frozen":
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def train_one_epoch(model, loader, optimizer, scheduler, config: FinetuneConfig, runtime: Runtime, frozen, on_step=None, forward=None, ema=None, anchors=None) -> dict[str, float]:
    """One pass over ``loader``; ``forward`` is the DDP wrapper of ``model`` when distributed, ``ema``
    (timm's ``ModelEmaV3`` of ``model.net``) is updated after every step, and ``anchors`` (parameter ->
    pretrained value) pull the backbone back by ``config.l2sp`` (L2-SP)."""
    forward = forward or model
    set_train_mode(model, frozen, config.bn_stats)
    with fp32_depthwise_backward(model.net):  # a no-op unless training under CPU bf16 autocast
        return _train_steps(model, loader, optimizer, scheduler, config, runtime, on_step, forward, ema, anchors or {})


@torch.no_grad()
def pull_to_anchors(optimizer: torch.optim.Optimizer, anchors: dict[nn.Parameter, torch.Tensor], strength: float) -> None:
    """L2-SP, decoupled: move each anchored parameter ``lr x strength`` (at most all) of the way back to its anchor."""
    for group in optimizer.param_groups:
        step = min(1.0, group["lr"] * strength)
        for p in group["params"]:
            if p in anchors:
                p.lerp_(anchors[p], step)


def l2sp_anchors(model: ImageClassifier, pretrained: dict[str, torch.Tensor] | None) -> dict[nn.Parameter, torch.Tensor]:
    """The trainable backbone parameters (not the head) and their pretrained values (``model.net``'s state names)."""
    if not pretrained:
        return {}
    head = {id(p) for p in model.head.parameters()}
    return {p: pretrained[n].to(p.device, p.dtype) for n, p in model.net.named_parameters() if p.requires_grad and id(p) not in head and n in pretrained}


def _train_steps(model, loader, optimizer, scheduler, config: FinetuneConfig, runtime: Runtime, on_step, forward, ema, anchors) -> dict[str, float]:
    total_loss, correct, seen, started = 0.0, 0, 0, time.perf_counter()
    params = [p for p in model.parameters() if p.requires_grad]
    mixer = _mixer(config.mix, len(model.classes))
    for step, (x, y) in enumerate(loader):
        x, target = x.to(runtime.device), y.to(runtime.device)
        if mixer is not None:
            x, target = mixer(x.float().div_(255), target)  # soft (B, C) targets
            y = target.argmax(1)  # the dominant class, for the running accuracy
        x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(runtime.device)
        with runtime.autocast():
            logits = forward(x)
            loss = F.cross_entropy(logits.float(), target, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        if anchors:
            pull_to_anchors(optimizer, anchors, config.l2sp)
        scheduler.step()
        if ema is not None:
            ema.update(model.net)
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        if on_step:
            on_step(step + 1, len(loader))
    seconds = time.perf_counter() - started
    total_loss, correct, seen = all_reduce_sums([total_loss, correct, seen], runtime.device)
    return {"train_loss": total_loss / max(1, seen), "train_accuracy": correct / max(1, seen), "train_images": seen, "images_per_s": seen / seconds, "train_s": seconds}


def _mixer(mix: str, n_classes: int):
    """torchvision's batch-level MixUp / CutMix (or a random choice of the two), or None."""
    from torchvision.transforms import v2

    if mix == "none":
        return None
    choices = {"mixup": [v2.MixUp(num_classes=n_classes)], "cutmix": [v2.CutMix(num_classes=n_classes)]}
    options = choices.get(mix, choices["mixup"] + choices["cutmix"])
    return v2.RandomChoice(options)


@torch.no_grad()
def evaluate_epoch(model: ImageClassifier, loader, runtime: Runtime, per_image: list | None = None) -> dict[str, float]:
    """Validation loss and accuracy; with ``per_image``, also appends (correct, loss) of every image
    (all processes', in a fixed order), for comparing two epochs image by image."""
    model.eval()
    losses, hits = [], []
    with runtime.autocast():
        for x, y in loader:
            logits = model(x.to(runtime.device).contiguous(memory_format=torch.channels_last)).float()
            y = y.to(runtime.device)
            losses.append(F.cross_entropy(logits, y, reduction="none").cpu())
            hits.append((logits.argmax(1) == y).cpu())
    loss, hit = (torch.cat(losses), torch.cat(hits)) if losses else (torch.zeros(0), torch.zeros(0, dtype=torch.bool))
    total_loss, correct, seen = all_reduce_sums([loss.sum().item(), hit.sum().item(), len(hit)], runtime.device)
    if per_image is not None:
        for right, value in all_gather_lists(list(zip(hit.tolist(), loss.tolist()))):
            per_image.append((bool(right), float(value)))
    return {"val_loss": total_loss / max(1, seen), "val_accuracy": correct / max(1, seen)}


def win_rate(baseline: Sequence[tuple[bool, float]], candidate: Sequence[tuple[bool, float]], resamples: int = 2000, seed: int = 0) -> float:
    """Share of bootstrap resamples of the validation images in which ``candidate`` is right on more
    images than ``baseline``: how sure a comparison on a few dozen images can be.

    Both are per-image (correct, loss) of the same images in the same order. A tie is no win, and loss
    does not break it: label smoothing makes a fine-tuned network less confident, so its loss is
    higher than the probe's at equal accuracy, which says nothing about which errs less.
    """
    import numpy as np

    if not baseline:
        return 0.0
    b, c = np.array(baseline, dtype=float), np.array(candidate, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(b), size=(resamples, len(b)))  # (R, N)
    return float(((c[:, 0] - b[:, 0])[idx].sum(1) > 0).mean())


def _weight_average(model: ImageClassifier, config: FinetuneConfig, steps_per_epoch: int):
    """(timm ``ModelEmaV3`` of ``model.net`` or None, the classifier that validation judges).

    An average of the weights over the last epoch or so smooths the noise of small, augmented batches.
    """
    if config.ema_epochs <= 0:
        return None, model
    from timm.utils import ModelEmaV3

    ema = ModelEmaV3(model.net, decay=1.0 - 1.0 / max(1.0, config.ema_epochs * steps_per_epoch))
    return ema, ImageClassifier(ema.module, model.preprocess, model.classes).to(device_of(model.net), memory_format=torch.channels_last)  # its own normalising buffers too


@dataclass
class _Schedule:
    """One learning-rate schedule: the run's first, or a retry's from the probe at a lower peak rate."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    ema: Any  # timm ``ModelEmaV3`` of ``model.net``, or None (``config.ema_epochs`` 0)
    judged: ImageClassifier  # what validation scores and the run keeps: the weight average, else the model


def _schedule(model: ImageClassifier, config: FinetuneConfig, lr: float, steps: int) -> _Schedule:
    """The optimizer, scheduler and weight average of a schedule at peak ``lr`` over ``steps`` per epoch."""
    optimizer = make_optimizer(model.net, config, lr)
    return _Schedule(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, steps)), *_weight_average(model, config, steps))


_NO_SCORE = (-1.0, -math.inf)  # below any epoch's (accuracy, -loss)


@dataclass
class _Best:
    """The best tuned epoch so far (epoch 0, the probe, is judged apart)."""

    score: tuple[float, float] = _NO_SCORE  # (validation accuracy, -loss), see ``_score``
    state: dict[str, torch.Tensor] | None = None  # its weights (``model.net``'s state dict)
    epoch: int = 0  # 0: no tuned epoch yet


def _score(row: dict[str, float]) -> tuple[float, float]:
    """Validation accuracy, ties (frequent on small validation sets) broken by lower loss."""
    return row["val_accuracy"], -row["val_loss"]


def _patience_from(best: _Best, probe_row: dict[str, float], probe_patience: bool, start: int = 0) -> int:
    """The epoch patience counts from: the best fine-tuned one, or epoch 0 while the probe still leads
    (``start``, the epoch a retry began after, instead of 0 for a retry)."""
    if probe_patience and best.score <= _score(probe_row):
        return start
    return max(best.epoch, start)


def _should_stop(epoch: int, best_epoch: int, config: FinetuneConfig, start: int = 0) -> bool:
    """All epochs done (``config.epochs`` after ``start``), or ``patience`` epochs in a row without a
    better validation score than the best so far (epoch 0, the probe, included)."""
    return epoch - start >= config.epochs or (epoch > start and epoch - best_epoch > config.patience)


def _should_retry(config: FinetuneConfig, start: int, probe_records: list, best_records: list) -> float | None:
    """When training would stop: the share of validation resamples in which the probe beat the best
    tuned epoch, when that is clear enough to start again from the probe at ``lr x retry_lr``; else None.

    A tuned network that ends clearly below the probe at its best has lost features the probe relied on,
    perhaps to too high a rate (the magnetic tiles: 0.76-0.82 on validation at lr 1e-3 against the probe's
    0.90; at 300 images a tenth of the rate beat the probe, at full size it did not: BENCHMARKS.md).
    """
    if not config.retry_lr or start or not probe_records or not best_records:
        return None
    worse = win_rate(best_records, probe_records)
    return worse if worse >= RETRY_WHEN else None


def finetune(
    model: ImageClassifier,
    train: Sequence[tuple[Path, int]],
    val: Sequence[tuple[Path, int]],
    runtime: Runtime,
    config: FinetuneConfig = FinetuneConfig(),
    seed: int = 0,
    checkpoint: Path | None = None,
    progress: Progress | None = None,
    resume: dict[str, Any] | None = None,
    checkpoint_extra: dict[str, Any] | None = None,
    deadline: float | None = None,
    probe_patience: bool = False,
    judge: Judge | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` (its head already trained) on ``train``; keep the epoch best on ``val``.

    Args:
        model: classifier whose head was fitted by the probe (phase 1).
        train, val: (image path, class index) pairs; ``val`` must not be empty.
        runtime: device and precision (bf16 autocast on CPUs that have it).
        checkpoint: file rewritten at the end of every epoch (weights, optimiser, scheduler, history).
        progress: ``(stage, done, total)`` with stage ``"epoch N"`` per training step.
        resume: a checkpoint (``load_checkpoint``) to continue from, after its last finished epoch.
        checkpoint_extra: stored in every checkpoint under ``"run"`` (what ``transferlab.resume`` needs).
        deadline: a ``time.monotonic()`` time by which training must end: no epoch starts that would
            not finish by then (judged by the last one), and one that overruns is abandoned.
        probe_patience: count ``patience`` from the probe's epoch 0 too, so training stops once that
            many epochs in a row have not beaten the probe (``auto``: minutes saved where it cannot pay).
        judge: scores ``model`` (the best tuned weights loaded, in eval mode) on ``val`` as the run will
            keep it, e.g. with a refitted head: per-image (correct, loss) in ``val``'s order, which then
            replace the tuned head's own in the comparison with the probe.

    Training runs on ``runtime.device``; ``model`` ends on its own device and in its own layout, holding the
    kept weights, in evaluation mode.

    Epoch 0 is the probe's head on the untouched backbone: it competes with every fine-tuned epoch,
    and the best fine-tuned epoch is kept only when it beats epoch 0 in ``config.min_win_rate`` of the
    bootstrap resamples of the validation images.
    """
    job = _Job(seed, checkpoint, progress, checkpoint_extra, deadline, probe_patience, judge)
    with preserved(model):
        result = _finetune(model, train, val, runtime, config, job, resume)
    model.eval()
    return result


@dataclass(frozen=True)
class _Job:
    """How one ``finetune`` call runs, beside its recipe (see ``finetune``'s arguments)."""

    seed: int = 0
    checkpoint: Path | None = None
    progress: Progress | None = None
    checkpoint_extra: dict[str, Any] | None = None
    deadline: float | None = None
    probe_patience: bool = False
    judge: Judge | None = None


@dataclass
class _Loop:
    """What every epoch uses and none changes: the network's training wrapper, the data, the settings."""

    forward: nn.Module  # what training steps call: the model, or its DistributedDataParallel / compiled wrapper
    frozen: list[nn.Module]  # modules that stay frozen (``frozen_modules``)
    train_loader_for: Callable[[int], Any]  # epoch -> that epoch's shuffled loader (the same on a resumed run)
    val_loader: Any  # a loader, or its batches decoded once when they fit in VAL_IN_MEMORY_BYTES
    steps: int  # optimiser steps per epoch
    runtime: Runtime
    config: FinetuneConfig
    world: World


def _make_loop(model: ImageClassifier, train: Sequence[tuple[Path, int]], val: Sequence[tuple[Path, int]], runtime: Runtime, config: FinetuneConfig, seed: int) -> _Loop:
    frozen = frozen_modules(model.net, config.unfreeze)
    pre = model.preprocess
    w = world()
    forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=[w.local_rank] if runtime.device.type == "cuda" else None) if w.distributed else model
    if config.compile:
        forward = torch.compile(forward)
    loaders = device_loaders(train, val, pre, config, seed, w, runtime)  # decoded and augmented on the GPU, or None
    if loaders is not None:
        train_loader_for, val_loader = loaders
    else:
        train_set = ImageFiles(train, train_transform(pre, config.augment, config.train_size_ratio), pre.draft_size())
        train_loader_for = lambda epoch: make_loader(train_set, config.batch_size, True, seed, epoch, w.size, w.rank, runtime.device.type)  # noqa: E731
        val_loader = make_loader(ImageFiles(list(val)[w.rank :: w.size], pre.to_uint8, pre.draft_size()), config.batch_size, False, seed, device_type=runtime.device.type)  # a shard per rank
    if len(val) // w.size * 3 * pre.input_size[0] * pre.input_size[1] <= VAL_IN_MEMORY_BYTES:
        val_loader = list(val_loader)  # decoded once, not once per epoch: it was 2 s of every 15 s epoch here
    return _Loop(forward, frozen, train_loader_for, val_loader, len(train_loader_for(0)), runtime, config, w)


@dataclass
class _State:
    """Where fine-tuning stands: what a checkpoint stores and a resumed run continues from."""

    result: FinetuneResult  # the history so far and the retry's fields
    lr: float  # peak learning rate of the schedule running
    epoch: int = 0  # the last finished epoch (the one running, during an epoch)
    start: int = 0  # the epoch a retry started after (0: the first schedule)
    best: _Best = field(default_factory=_Best)
    records: dict[int, list[tuple[bool, float]]] = field(default_factory=dict)  # per-image (correct, loss) of epoch 0 and of the best epoch
    probe_state: dict[str, torch.Tensor] | None = None  # the probe's weights (None: a checkpoint from before epoch 0 competed)

    @classmethod
    def first(cls, model: ImageClassifier, schedule: _Schedule, loop: _Loop) -> _State:
        """Epoch 0: the probe's head on the untouched backbone, scored on val; its weights kept to go back to."""
        records: dict[int, list[tuple[bool, float]]] = {0: []}
        result = FinetuneResult(history=[{"epoch": 0, **evaluate_epoch(schedule.judged, loop.val_loader, loop.runtime, records[0])}])
        return cls(result, loop.config.lr, records=records, probe_state=copy.deepcopy(model.net.state_dict()))

    @classmethod
    def from_checkpoint(cls, resume: dict[str, Any], config: FinetuneConfig) -> _State:
        """The state a checkpoint (``load_checkpoint``, any version) was written in."""
        retry = resume.get("retry") or {"start": 0, "lr": config.lr}  # a run that started again, resumed
        start, lr = retry["start"], retry["lr"]
        result = FinetuneResult(history=list(resume["history"]), retried_after=start, retry_reason=retry.get("reason"), retry_lr=lr if start else None)
        best_tuned = resume.get("best_tuned_epoch", resume["best_epoch"])
        best = _Best(_score(result.history[best_tuned]) if best_tuned else _NO_SCORE, resume["best_model"], best_tuned)
        records = {int(k): v for k, v in (resume.get("val_records") or {}).items()}
        return cls(result, lr, resume["epoch"], start, best, records, resume.get("probe_model"))

    def checkpoint(self, model: ImageClassifier, schedule: _Schedule, config: FinetuneConfig, extra: dict[str, Any] | None) -> dict[str, Any]:
        """The checkpoint of the last finished epoch, in the format ``from_checkpoint`` and ``load_checkpoint`` read."""
        return {
            "epoch": self.epoch, "model": model.net.state_dict(), "optimizer": schedule.optimizer.state_dict(),
            "scheduler": schedule.scheduler.state_dict(), "torch_rng": torch.get_rng_state(), "history": self.result.history,
            "best_epoch": self.best.epoch, "best_tuned_epoch": self.best.epoch, "best_model": self.best.state, "probe_model": self.probe_state,
            "val_records": self.records, "ema": schedule.ema.module.state_dict() if schedule.ema is not None else None, "config": asdict(config), "run": extra or {},
            "retry": {"start": self.start, "lr": self.lr, "reason": self.result.retry_reason} if self.start else None,
        }


def _restore(resume: dict[str, Any], model: ImageClassifier, schedule: _Schedule) -> None:
    """Load a checkpoint's weights, optimiser, scheduler, weight average and random state."""
    model.net.load_state_dict(resume["model"])
    schedule.optimizer.load_state_dict(resume["optimizer"])
    schedule.scheduler.load_state_dict(resume["scheduler"])
    if schedule.ema is not None:
        schedule.ema.module.load_state_dict(resume["ema"])
    torch.set_rng_state(resume["torch_rng"])


def _finetune(
    model: ImageClassifier, train: Sequence[tuple[Path, int]], val: Sequence[tuple[Path, int]], runtime: Runtime, config: FinetuneConfig,
    job: _Job, resume: dict[str, Any] | None,
) -> FinetuneResult:
    """``finetune`` on ``runtime.device``; leaves ``model`` there."""
    check_config(config)
    torch.manual_seed(job.seed)
    model.to(runtime.device, memory_format=torch.channels_last)
    model.head_dropout = config.dropout
    loop = _make_loop(model, train, val, runtime, config, job.seed)
    if resume is None:
        schedule = _schedule(model, config, config.lr, loop.steps)
        state = _State.first(model, schedule, loop)
    else:
        state = _State.from_checkpoint(resume, config)
        schedule = _schedule(model, config, state.lr, loop.steps)  # a retried run resumes at the retry's rate
        _restore(resume, model, schedule)
    try:
        _run_epochs(model, state, loop, schedule, job)
    except KeyboardInterrupt:
        # Ctrl-C: the checkpoint of the last finished epoch is intact; keep the best weights so far.
        state.result.interrupted = True
        log.warning("interrupted during epoch %d; the last finished epoch is checkpointed", state.epoch)
        if state.best.state is None and not state.start:
            raise  # no epoch finished: nothing to keep or resume
    return _finish(model, state, loop, job)


def _run_epochs(model: ImageClassifier, state: _State, loop: _Loop, schedule: _Schedule, job: _Job) -> None:
    """Train epoch after epoch until early stopping, the last epoch or the time budget; start again from
    the probe at a lower rate once, when the best tuned epoch ends clearly below it."""
    anchors = l2sp_anchors(model, state.probe_state) if loop.config.l2sp > 0 else {}
    last_epoch_s = 0.0
    while True:
        if _should_stop(state.epoch, _patience_from(state.best, state.result.history[0], job.probe_patience, state.start), loop.config, state.start):
            worse = _should_retry(loop.config, state.start, state.records.get(0, []), state.records.get(state.best.epoch, [])) if state.probe_state is not None and state.best.epoch else None
            if worse is None:
                break
            schedule = _retry(model, state, loop, worse)
        if job.deadline is not None and _out_of_time(time.monotonic() + last_epoch_s > job.deadline, loop.runtime):
            state.result.over_budget = True
            break
        started = time.monotonic()
        if not _epoch(model, state, loop, schedule, job, anchors):
            break
        last_epoch_s = time.monotonic() - started
        if job.checkpoint is not None and loop.world.is_main:
            save_checkpoint(job.checkpoint, state.checkpoint(model, schedule, loop.config, job.checkpoint_extra))


def _retry(model: ImageClassifier, state: _State, loop: _Loop, worse: float) -> _Schedule:
    """Start again from the probe's weights at ``lr x retry_lr``, with a full schedule of its own."""
    state.start, state.lr = state.epoch, state.lr * loop.config.retry_lr
    state.result.retried_after, state.result.retry_reason, state.result.retry_lr = state.epoch, worse, state.lr
    log.info("the best tuned epoch fell below the probe in %.0f%% of validation resamples: starting again from the probe at lr %.2g", 100 * worse, state.lr)
    model.net.load_state_dict(state.probe_state)
    state.best, state.records = _Best(), {0: state.records.get(0, [])}
    return _schedule(model, loop.config, state.lr, loop.steps)


def _epoch(model: ImageClassifier, state: _State, loop: _Loop, schedule: _Schedule, job: _Job, anchors: dict[nn.Parameter, torch.Tensor]) -> bool:
    """Train and validate one epoch, keeping it when it is the best so far; False when the time budget ran
    out inside it (the epoch is abandoned)."""
    state.epoch += 1
    on_step = _step_callback(job.progress, state.epoch, job.deadline if not loop.world.distributed else None)
    try:
        losses = train_one_epoch(model, loop.train_loader_for(state.epoch), schedule.optimizer, schedule.scheduler, loop.config, loop.runtime, loop.frozen, on_step, loop.forward, schedule.ema, anchors)
    except _OverBudget:
        state.result.over_budget, state.epoch = True, state.epoch - 1
        return False
    per_image: list[tuple[bool, float]] = []
    row = {"epoch": state.epoch, **losses, **evaluate_epoch(schedule.judged, loop.val_loader, loop.runtime, per_image)}
    row["lr"] = max(group["lr"] for group in schedule.optimizer.param_groups)
    state.result.history.append(row)
    if _score(row) > state.best.score:
        state.best = _Best(_score(row), copy.deepcopy(schedule.judged.net.state_dict()), state.epoch)
        state.records = {0: state.records.get(0, []), state.epoch: per_image}
    return True


def _finish(model: ImageClassifier, state: _State, loop: _Loop, job: _Job) -> FinetuneResult:
    """Weigh the best tuned epoch against the probe (bootstrap win rate) and load the weights the run keeps."""
    result, best, records = state.result, state.best, state.records
    result.stopped_early = state.epoch - state.start < loop.config.epochs and not result.interrupted
    result.best_tuned_epoch = best.epoch
    if job.judge is not None and best.epoch and best.state is not None and records.get(0) and not result.interrupted:
        _judge_best(model, state, job.judge, job.seed, loop.world)
    if best.epoch and records.get(0) and records.get(best.epoch):
        result.win_rate = win_rate(records[0], records[best.epoch], seed=job.seed)
    # (a checkpoint from before epoch 0 competed has no probe weights to go back to: it keeps its best epoch)
    keep_tuned = best.epoch > 0 and (state.probe_state is None or result.win_rate is None or result.win_rate >= loop.config.min_win_rate)
    result.best_epoch = best.epoch if keep_tuned else 0
    model.net.load_state_dict(best.state if keep_tuned else state.probe_state)
    model.head_dropout = 0.0
    model.requires_grad_(True).eval()
    return result


def _judge_best(model: ImageClassifier, state: _State, judge: Judge, seed: int, w: World) -> None:
    """Score the best tuned weights with ``judge`` (e.g. with a refitted head): its per-image records
    replace the tuned head's own in the comparison with the probe."""
    epoch = state.best.epoch
    model.net.load_state_dict(state.best.state)
    model.head_dropout = 0.0
    model.eval()
    scored = judge(model)  # in val's order; the epochs' records are gathered shard by shard (rank order)
    state.result.head_win_rate = win_rate(state.records[0], state.records[epoch], seed=seed)
    state.records[epoch] = [x for r in range(w.size) for x in scored[r :: w.size]]
    state.result.judged_accuracy = sum(right for right, _ in state.records[epoch]) / max(1, len(state.records[epoch]))


class _OverBudget(Exception):
    """Raised from the step callback when the time budget ran out in the middle of an epoch."""


def _step_callback(progress: Progress | None, epoch: int, deadline: float | None):
    if progress is None and deadline is None:
        return None

    def on_step(done: int, total: int) -> None:
        if progress:
            progress(f"epoch {epoch}", done, total)
        if deadline is not None and time.monotonic() > deadline:
            raise _OverBudget

    return on_step


def _out_of_time(local: bool, runtime: Runtime) -> bool:
    """Whether any process is out of time (so all processes stop at the same epoch)."""
    return all_reduce_sums([float(local)], runtime.device)[0] > 0
