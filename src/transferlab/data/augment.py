"""Training-time augmentation presets (torchvision transforms v2), built from a backbone's preprocessing.

Evaluation never uses these: it always goes through ``Preprocess.to_uint8``, the backbone's own
resize + centre crop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision.transforms import v2
from ..errors import ConfigError

AUGMENTATIONS = ("none", "light", "strong")

_INTERPOLATION = {
    "nearest": v2.InterpolationMode.NEAREST,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
    "lanczos": v2.InterpolationMode.LANCZOS,
}


def train_transform(preprocess, preset: str = "light", size_ratio: float = 1.0) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> (3, H, W) uint8 tensor: the random crops at ``train_size(...)``, ``none`` at the input size.

    Args:
        preprocess: the backbone's ``Preprocess`` record (input size, interpolation).
        preset: ``none`` (the eval transform), ``light`` (random resized crop + horizontal flip) or
            ``strong`` (light + TrivialAugment + random erasing).
        size_ratio: random crops are this fraction of the input size (see ``train_size``).
    """
    if preset not in AUGMENTATIONS:
        raise ConfigError(f"expected augmentation in {AUGMENTATIONS}, got {preset!r}")
    if preset == "none":
        return preprocess.to_uint8
    interpolation = _INTERPOLATION.get(preprocess.interpolation, v2.InterpolationMode.BICUBIC)
    steps: list[Callable] = [
        v2.RandomResizedCrop(train_size(preprocess.input_size, size_ratio), scale=(0.35, 1.0), interpolation=interpolation, antialias=True),
        v2.RandomHorizontalFlip(),
    ]
    if preset == "strong":
        steps.append(v2.TrivialAugmentWide(interpolation=interpolation))
    steps.append(v2.PILToTensor())
    if preset == "strong":
        steps.append(v2.RandomErasing(p=0.25, value=0))
    return v2.Compose(steps)


def train_size(input_size: tuple[int, int], ratio: float) -> tuple[int, int]:
    """Training crop size: ``ratio`` x the evaluation input size, to the nearest multiple of 32.

    A random resized crop shows objects larger than the evaluation centre crop does; training a little
    below the evaluation size compensates ("FixRes", Touvron et al. 2019) and saves compute.
    """
    if not 0 < ratio <= 2:
        raise ConfigError(f"expected a training size ratio in (0, 2], got {ratio!r}")
    if ratio == 1:
        return tuple(input_size)  # type: ignore[return-value]
    return tuple(max(32, round(side * ratio / 32) * 32) for side in input_size)  # type: ignore[return-value]
