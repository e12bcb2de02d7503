"""Tensors in [0, 1] to 8-bit images and lossless PNG bytes: one rounding rule for every file we write."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image


def to_pil(image: torch.Tensor) -> Image.Image:
    """A (3, H, W) image in [0, 1] as an 8-bit RGB PIL image (rounded, not truncated).

    Shape:
        image (3, H, W) float in [0, 1].
    """
    array = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def png_bytes(image: torch.Tensor | Image.Image) -> bytes:
    """Lossless PNG of a PIL image or a (3, H, W) tensor in [0, 1] (exact for images on the 8-bit grid)."""
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else to_pil(image)).save(buffer, format="PNG")
    return buffer.getvalue()
