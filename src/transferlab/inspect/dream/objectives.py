"""What the dream maximises (lucent's ``optvis/objectives``).

An ``Objective`` maps what one optimisation step saw (the logits of the transformed image and the image
itself) to one number per image to *maximise*. Objectives compose with ``+``, ``-`` and ``*`` by a number,
so the classic recipe reads ``class_logit(k) - 0.5 * total_variation()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Step:
    """What an objective can look at: logits of the transformed view and the untransformed image.

    Shape:
        logits (B, num_classes); image (B, 3, H, W) in [0, 1].
    """

    logits: torch.Tensor
    image: torch.Tensor


class Objective:
    """A named function ``Step -> (B,)`` tensor to maximise; combine with ``+``, ``-``, ``*`` (by numbers)."""

    def __init__(self, fn: Callable[[Step], torch.Tensor], name: str) -> None:
        self.fn = fn
        self.name = name

    def __call__(self, step: Step) -> torch.Tensor:
        return self.fn(step)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda s: self(s) + other(s), f"{self.name} + {other.name}")

    def __sub__(self, other: "Objective") -> "Objective":
        return Objective(lambda s: self(s) - other(s), f"{self.name} - {other.name}")

    def __neg__(self) -> "Objective":
        return Objective(lambda s: -self(s), f"-{self.name}")

    def __mul__(self, k: float) -> "Objective":
        if not isinstance(k, (int, float)):
            return NotImplemented
        return Objective(lambda s: k * self(s), f"{k:g} * {self.name}")

    __rmul__ = __mul__


def class_logit(index: int) -> Objective:
    """The class's logit: raises the class without having to push every other class down."""
    return Objective(lambda s: s.logits[:, index], f"logit[{index}]")


def class_log_prob(index: int) -> Objective:
    """log p(class): raises the class *against* the others (log-softmax, numerically safe)."""
    return Objective(lambda s: torch.log_softmax(s.logits, dim=1)[:, index], f"log_prob[{index}]")


def class_prob(index: int) -> Objective:
    """p(class) itself (its gradient vanishes once the class dominates; prefer ``class_log_prob``)."""
    return Objective(lambda s: torch.softmax(s.logits, dim=1)[:, index], f"prob[{index}]")


def tv_per_pixel(image: torch.Tensor) -> torch.Tensor:
    """Total variation per pixel: mean |difference| between vertical and horizontal neighbours, summed.

    The anisotropic L1 total variation divided by the number of pixel values, so it does not grow
    with image size: 0 for a flat image, about 0.67 for uniform noise in [0, 1].

    Shape:
        image (B, C, H, W) -> (B,).
    """
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    return dy + dx


def total_variation() -> Objective:
    """Total variation per pixel of the image (subtract it, times a weight, to smooth the image)."""
    return Objective(lambda s: tv_per_pixel(s.image), "tv")


def l2(centre: float = 0.5) -> Objective:
    """Mean squared distance of the pixels from grey (subtract it to keep colours from saturating)."""
    return Objective(lambda s: (s.image - centre).pow(2).mean(dim=(1, 2, 3)), "l2")
