"""Learning-rate range test (Smith 2015, as popularised by fastai): raise the learning rate
exponentially over a few dozen steps and watch the loss; the network is restored afterwards."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.augment import train_transform
from ..features.runtime import Runtime
from ..models.classifier import ImageClassifier
from ..models.state import preserved
from .depthwise import fp32_depthwise_backward
from .finetune import FinetuneConfig, set_train_mode, frozen_modules, make_optimizer
from .loader import ImageFiles, make_loader


@dataclass
class LRFind:
    lrs: list[float]  # head learning rate at each step
    losses: list[float]  # exponentially smoothed training loss at each step
    suggestion: float  # a tenth of the highest rate the loss tolerated: a good peak ``lr``


def lr_find(
    model: ImageClassifier,
    train: Sequence[tuple[Path, int]],
    runtime: Runtime,
    config: FinetuneConfig = FinetuneConfig(),
    start_lr: float = 1e-7,
    end_lr: float = 1.0,
    steps: int = 60,
    seed: int = 0,
) -> LRFind:
    """Run the range test with ``config``'s optimiser, layer decay, unfreezing and augmentation.

    Stops early once the smoothed loss exceeds 4x its minimum. The model's weights, device and layout are
    restored before returning; it is left in evaluation mode.
    """
    saved = copy.deepcopy(model.state_dict())
    torch.manual_seed(seed)
    pre = model.preprocess
    lrs: list[float] = []
    losses: list[float] = []
    smooth, best, epoch = math.inf, math.inf, 0
    with preserved(model), fp32_depthwise_backward(model.net):  # (fp32: a no-op unless training under CPU bf16 autocast)
        model.to(runtime.device, memory_format=torch.channels_last)
        frozen = frozen_modules(model.net, config.unfreeze)
        optimizer = make_optimizer(model.net, config, start_lr)
        scales = [group.get("lr_scale", 1.0) for group in optimizer.param_groups]
        try:
            set_train_mode(model, frozen, config.bn_stats)
            while len(lrs) < steps and smooth <= 4 * best:  # stops once the loss has blown up
                loader = make_loader(ImageFiles(train, train_transform(pre, config.augment, config.train_size_ratio), pre.draft_size()), config.batch_size, True, seed, epoch, device_type=runtime.device.type)
                for x, y in itertools.islice(loader, steps - len(lrs)):
                    lr = start_lr * (end_lr / start_lr) ** (len(lrs) / max(1, steps - 1))
                    for group, scale in zip(optimizer.param_groups, scales):
                        group["lr"] = lr * scale
                    x, y = x.to(runtime.device).contiguous(memory_format=torch.channels_last), y.to(runtime.device)
                    with runtime.autocast():
                        loss = F.cross_entropy(model(x).float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    value = loss.item() if math.isfinite(loss.item()) else math.inf
                    smooth = value if not lrs else 0.9 * smooth + 0.1 * value
                    lrs.append(lr)
                    losses.append(smooth)
                    best = min(best, smooth)
                    if smooth > 4 * best:
                        break
                epoch += 1
        finally:
            model.load_state_dict(saved)
            model.requires_grad_(True)
    model.eval()
    return LRFind(lrs, losses, _suggest(lrs, losses))


def _suggest(lrs: list[float], losses: list[float]) -> float:
    """A tenth of the largest learning rate the loss tolerated (still under twice its running minimum).

    After the probe the head is already good, so the curve is flat until the rate gets too high and
    there is no steep descent to pick; one decade below the blow-up is fastai's "minimum / 10" rule.
    """
    running_min, tolerated = math.inf, lrs[0]
    for lr, loss in zip(lrs, losses):
        running_min = min(running_min, loss)
        if loss > 2 * running_min:
            break
        tolerated = lr
    return max(lrs[0], tolerated / 10)


def plot_lr_find(result: LRFind):
    """Loss against learning rate (log scale), the suggestion marked."""
    from ..evaluate.plots import new_figure

    fig = new_figure((6, 4))
    ax = fig.subplots()
    ax.plot(result.lrs, result.losses)
    ax.axvline(result.suggestion, color="tab:red", linestyle="--", label=f"suggested lr {result.suggestion:.1e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (head; lower stages scaled by the layer decay)")
    ax.set_ylabel("training loss (smoothed)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
