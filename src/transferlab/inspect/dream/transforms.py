"""Random transforms applied to the image before each step (lucent's ``optvis/transform``).

An image that raises the class score only at one exact pixel alignment is adversarial noise; asking it
to work under random shifts, zooms and rotations makes the optimiser find features the network
recognises anywhere, which also look more like the class to people and to other networks.
Each transform maps (B, 3, H, W) -> (B, 3, H', W') and is differentiable in the image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor], torch.Tensor]


def _randint(high: int) -> int:
    return int(torch.randint(high, ()).item())


def pad(width: int, value: float = 0.5) -> Transform:
    """Pad by ``width`` pixels of grey, so later shifts and rotations do not pull in the far edge."""

    def inner(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (width,) * 4, mode="constant", value=value)

    return inner


def jitter(d: int) -> Transform:
    """Random crop losing ``d`` pixels in each direction: a shift of up to ``d`` pixels."""

    def inner(x: torch.Tensor) -> torch.Tensor:
        if d <= 0:
            return x
        h, w = x.shape[-2:]
        dy, dx = _randint(d + 1), _randint(d + 1)
        return x[..., dy : dy + h - d, dx : dx + w - d]

    return inner


def random_scale(scales: Sequence[float]) -> Transform:
    """Zoom by a factor drawn from ``scales`` (bilinear)."""

    def inner(x: torch.Tensor) -> torch.Tensor:
        s = float(scales[_randint(len(scales))])
        if s == 1.0:
            return x
        h, w = x.shape[-2:]
        return F.interpolate(x, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear", align_corners=False)

    return inner


def random_rotate(degrees: Sequence[float]) -> Transform:
    """Rotate about the centre by an angle drawn from ``degrees``; corners are filled with grey."""

    def inner(x: torch.Tensor) -> torch.Tensor:
        angle = math.radians(float(degrees[_randint(len(degrees))]))
        if angle == 0.0:
            return x
        cos, sin = math.cos(angle), math.sin(angle)
        theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device).expand(x.shape[0], 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5

    return inner


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order."""

    def inner(x: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            x = t(x)
        return x

    return inner


def standard_transforms(jitter_px: int = 8, scale: float = 0.1, rotate: float = 10.0) -> list[Transform]:
    """Lucent's ``standard_transforms``, with its strengths as arguments (0 turns a transform off).

    pad 12 px, jitter ``jitter_px``, zoom 1 ± ``scale`` in 11 steps, rotation ± ``rotate`` degrees (a third
    of the draws unrotated), jitter 4.
    """
    out: list[Transform] = []
    if jitter_px > 0:
        out += [pad(12), jitter(jitter_px)]
    if scale > 0:
        out.append(random_scale([1 + scale * (i - 5) / 5 for i in range(11)]))
    if rotate > 0:
        steps = [rotate * (i - 10) / 10 for i in range(21)]
        out.append(random_rotate(steps + [0.0] * 10))
    if jitter_px > 0:
        out.append(jitter(min(4, jitter_px)))
    return out
