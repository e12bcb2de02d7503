"""A classifier over whole photos at their own size: the evaluation crop and resize inside the network.

``Preprocess.to_uint8`` resizes a photo's crop box with Pillow. ``PhotoClassifier`` does the same
arithmetic as a differentiable layer: Pillow's own filter weights (``Resample.c``: the filter stretched
by the scale when shrinking, each row normalised), horizontal pass then vertical, each rounded to 8 bits
as Pillow stores it (straight-through for the gradient). An image optimised through it (an adversarial
photo) is judged exactly as ``transferlab predict`` will judge the saved file.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError


def _bicubic(x: torch.Tensor) -> torch.Tensor:  # Pillow's bicubic, a = -0.5
    a, x = -0.5, x.abs()
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _triangle(x: torch.Tensor) -> torch.Tensor:  # bilinear
    return (1 - x.abs()).clamp_min(0)


def _box(x: torch.Tensor) -> torch.Tensor:
    return ((x > -0.5) & (x <= 0.5)).to(x.dtype)


FILTERS = {"bicubic": (_bicubic, 2.0), "bilinear": (_triangle, 1.0), "box": (_box, 0.5)}


def resample_matrix(in_size: int, out_size: int, start: float, end: float, interpolation: str = "bicubic") -> torch.Tensor:
    """(out_size, in_size) weights that resize the source span [start, end) to ``out_size`` pixels as
    Pillow's ``Image.resize(..., box=...)`` does along one axis (float64)."""
    if interpolation not in FILTERS:
        raise InputError(f"expected interpolation in {', '.join(FILTERS)} for a differentiable resize, got {interpolation!r}")
    kernel, support = FILTERS[interpolation]
    scale = (end - start) / out_size
    filterscale = max(scale, 1.0)
    support *= filterscale
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        center = start + (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        taps = kernel((torch.arange(lo, hi, dtype=torch.float64) - center + 0.5) / filterscale)
        total = taps.sum()
        weights[i, lo:hi] = taps / total if total != 0 else taps
    return weights


class _Round8(torch.autograd.Function):
    """Round to the 8-bit grid and clip, as Pillow stores each pass; the gradient passes straight through."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return torch.floor(x * 255 + 0.5).clamp_(0, 255) / 255

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        return grad


def _two_pass(x: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor, vertical_first: bool) -> torch.Tensor:
    """Separable resize, 8-bit rounding after each pass. Shape: (B, C, H, W) -> (B, C, out_h, out_w)."""
    if vertical_first:
        return _Round8.apply(torch.einsum("bchw,ow->bcho", _Round8.apply(torch.einsum("bchw,oh->bcow", x, wy)), wx))
    return _Round8.apply(torch.einsum("bchw,oh->bcow", _Round8.apply(torch.einsum("bchw,ow->bcho", x, wx)), wy))


def _pillow_goes_vertical_first(pre, h: int, w: int, wy: torch.Tensor, wx: torch.Tensor) -> bool:  # noqa: ANN001
    """Which pass this Pillow runs first for this size (versions differ, and it matters at 8 bits):
    asked of Pillow itself on one random image of the same size."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    pillow = pre.to_uint8(Image.fromarray(pixels)).float().div(255).unsqueeze(0)
    x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).float().div(255)
    misses = [(_two_pass(x, wy, wx, order) - pillow).abs().gt(0.5 / 255).sum().item() for order in (False, True)]
    return misses[1] < misses[0]


class PhotoClassifier(nn.Module):
    """``model`` (an ``ImageClassifier``) applied to whole photos: (B, 3, H, W) in [0, 1] at the photo's
    own size -> logits, through the crop box and resize of ``model.preprocess``.

    Shape:
        x (B, 3, H, W) float in [0, 1], any H and W; returns (B, C) logits.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._weights: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor, bool]] = {}

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    @property
    def preprocess(self):  # noqa: ANN201
        return self.model.preprocess

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """The model's input view of photos ``x``: what ``Preprocess.to_tensor`` gives for the same pixels."""
        h, w = x.shape[-2:]
        key = (h, w, str(x.device))
        if key not in self._weights:
            pre = self.model.preprocess
            out_h, out_w = pre.input_size
            left, top, right, bottom = pre.crop_box(w, h)
            wy = resample_matrix(h, out_h, top, bottom, pre.interpolation).float()
            wx = resample_matrix(w, out_w, left, right, pre.interpolation).float()
            self._weights[key] = wy.to(x.device), wx.to(x.device), _pillow_goes_vertical_first(pre, h, w, wy, wx)
        wy, wx, vertical_first = self._weights[key]
        with torch.autocast(x.device.type, enabled=False):  # 8-bit exactness needs fp32 sums
            return _two_pass(x.float(), wy, wx, vertical_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"expected photos of shape (B, 3, H, W), got {tuple(x.shape)}")
        return self.model(self.resize(x).contiguous(memory_format=torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format))


def photo_tensor(image) -> torch.Tensor:  # noqa: ANN001
    """A PIL image as (1, 3, H, W) float in [0, 1] on the 8-bit grid, at its own size."""
    import numpy as np

    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0).float().div_(255)

