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


def train_transform(preprocess, preset: str = "light") -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image -> (3, H, W) uint8 tensor at the backbone's input size.

    Args:
        preprocess: the backbone's ``Preprocess`` record (input size, interpolation).
        preset: ``none`` (the eval transform), ``light`` (random resized crop + horizontal flip) or
            ``strong`` (light + TrivialAugment + random erasing).
    """
    if preset not in AUGMENTATIONS:
        raise ConfigError(f"expected augmentation in {AUGMENTATIONS}, got {preset!r}")
    if preset == "none":
        return preprocess.to_uint8
    interpolation = _INTERPOLATION.get(preprocess.interpolation, v2.InterpolationMode.BICUBIC)
    steps: list[Callable] = [
        v2.RandomResizedCrop(preprocess.input_size, scale=(0.35, 1.0), interpolation=interpolation, antialias=True),
        v2.RandomHorizontalFlip(),
    ]
    if preset == "strong":
        steps.append(v2.TrivialAugmentWide(interpolation=interpolation))
    steps.append(v2.PILToTensor())
    if preset == "strong":
        steps.append(v2.RandomErasing(p=0.25, value=0))
    return v2.Compose(steps)
