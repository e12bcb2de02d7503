"""The optimisation loop (lucent's ``optvis/render``): it knows nothing about classes or images.

Each step draws a random view of the parameterised image through the transforms, runs the model on it,
and takes an Adam step on the image parameters to raise the objective. The model's weights are never
changed and never get gradients; its train/eval mode is restored afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ...models.state import eval_mode
from .objectives import Objective, Step
from .param import ImageParam
from .transforms import Transform, compose

StepCallback = Callable[[int, int], None]  # (done, total)


@dataclass
class Rendered:
    """What ``render`` returns.

    Shape:
        image (B, 3, H, W) in [0, 1]; each frame likewise.
    """

    image: torch.Tensor
    history: list[float]  # objective (batch mean) at each step, before its update
    frames: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (steps done, image)
    seconds: float = 0.0


def frame_steps(steps: int, frames: int) -> list[int]:
    """``frames`` step counts evenly spread from 0 (the start) to ``steps`` (the result)."""
    if frames <= 0:
        return []
    if frames == 1:
        return [steps]
    return sorted({round(i * steps / (frames - 1)) for i in range(frames)})


def render(
    model: nn.Module,
    objective: Objective,
    param: ImageParam,
    transforms: Sequence[Transform] = (),
    *,
    steps: int = 256,
    lr: float = 0.05,
    frames: int = 0,
    progress: StepCallback | None = None,
) -> Rendered:
    """Maximise ``objective`` over the image ``param`` represents, by Adam on its parameters.

    Args:
        model: maps (B, 3, H, W) images in [0, 1] to logits (normalisation inside, as ImageClassifier).
        objective: what to maximise (see ``objectives``); summed over the batch.
        param: the image representation (see ``param``); moved to the model's device.
        transforms: random transforms applied to the image before the model at each step.
        steps: optimiser steps.
        lr: Adam learning rate.
        frames: also keep this many snapshots of the image, evenly spaced over the run.
        progress: called with (steps done, steps) after each step.
    """
    started = time.perf_counter()
    device = next(model.parameters()).device
    param = param.to(device)
    variables = list(param.parameters())
    optimizer = torch.optim.Adam(variables, lr=lr)
    view = compose(transforms)
    keep = set(frame_steps(steps, frames))
    history: list[float] = []
    snapshots: list[tuple[int, torch.Tensor]] = []
    with eval_mode(model):
        for i in range(steps + 1):
            if i in keep:
                with torch.no_grad():
                    snapshots.append((i, param().detach().cpu()))
            if i == steps:
                break
            image = param()
            value = objective(Step(model(view(image)), image)).sum()
            # grads for the image parameters only: the model's weights get none and stay untouched
            grads = torch.autograd.grad(-value, variables)
            for v, g in zip(variables, grads):
                v.grad = g
            optimizer.step()
            history.append(float(value.detach()) / image.shape[0])
            if progress:
                progress(i + 1, steps)
        with torch.no_grad():
            result = param().detach().cpu()
    return Rendered(result, history, snapshots, time.perf_counter() - started)
