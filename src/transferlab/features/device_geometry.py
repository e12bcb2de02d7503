"""Resize, crop, orientation and random crops as batched tensor operations, on whatever device the images are.

The GPU input pipeline decodes on the device and must then produce the pixels the CPU path produces. Pillow's
``Image.resize(size, filter, box=...)`` (what ``Preprocess.to_uint8`` and the training crops use) is a separable
filter: each output pixel is a normalised, filter-weighted sum of a window of input pixels, the window widened by
the downscale factor (antialiasing). Here those weights are built exactly as Pillow builds them
(``precompute_coeffs`` in its Resample.c) into one matrix per axis and image, so a batch is resized by two batched
matrix products, rounded to uint8 after each pass as Pillow does. The functions run on CPU tensors too, which is
how the tests compare them with Pillow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..models.preprocess import Preprocess

PAD_BUDGET = 2**26  # pixels (per channel) of zero-padded input resized in one go; larger batches are split


def _bicubic(x: torch.Tensor) -> torch.Tensor:
    a = -0.5  # Pillow's (and Keys') cubic
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _sinc(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x == 0, torch.ones_like(x), torch.sin(math.pi * x) / (math.pi * x).where(x != 0, torch.ones_like(x)))


def _hamming(x: torch.Tensor) -> torch.Tensor:
    x = x.abs()
    return torch.where(x < 1, _sinc(x) * (0.54 + 0.46 * torch.cos(math.pi * x)), torch.zeros_like(x))


# Pillow's filters: (support, weight function)
_FILTERS: dict[str, tuple[float, Callable[[torch.Tensor], torch.Tensor]]] = {
    "box": (0.5, lambda x: ((x > -0.5) & (x <= 0.5)).to(x.dtype)),
    "bilinear": (1.0, lambda x: (1 - x.abs()).clamp(min=0)),
    "hamming": (1.0, _hamming),
    "bicubic": (2.0, _bicubic),
    "lanczos": (3.0, lambda x: torch.where(x.abs() < 3, _sinc(x) * _sinc(x / 3), torch.zeros_like(x))),
}


def resample_matrix(in_sizes: torch.Tensor, start: torch.Tensor, end: torch.Tensor, out_size: int, width: int, interpolation: str) -> torch.Tensor:
    """Weights that resize the span [start, end) of each input axis to ``out_size`` samples, as Pillow does.

    Args:
        in_sizes: (B,) the length of each image's axis; columns at or beyond it get no weight (padding).
        start, end: (B,) the kept span in source pixels (floats: Pillow's ``box``).
        out_size: samples out.
        width: columns of the result (the padded input length, at least ``in_sizes.max()``).
        interpolation: one of Pillow's filters by name (``Preprocess.interpolation``).

    Shape:
        returns (B, out_size, width) float32 on ``in_sizes``'s device; each row sums to 1.
    """
    dev = in_sizes.device
    in_sizes, start, end = in_sizes.double(), start.double().to(dev), end.double().to(dev)
    scale = (end - start) / out_size  # (B,) source pixels per output pixel
    centre = start[:, None] + (torch.arange(out_size, device=dev, dtype=torch.float64) + 0.5) * scale[:, None]  # (B, out)
    dense = torch.zeros(len(in_sizes), out_size, width, device=dev)
    if interpolation == "nearest":  # Pillow: an affine transform sampling floor(centre)
        index = centre.floor().clamp(min=0).minimum(in_sizes[:, None] - 1).long()
        return dense.scatter_(2, index[..., None], 1.0)
    support, weight = _FILTERS[interpolation]
    filter_scale = scale.clamp(min=1.0)[:, None, None]  # widened when shrinking: antialiasing
    reach = support * filter_scale
    lo = (centre[..., None] - reach + 0.5).floor().clamp(min=0)  # (B, out, 1) the window Pillow sums over
    hi = torch.minimum((centre[..., None] + reach + 0.5).floor(), in_sizes[:, None, None])
    taps = 2 * math.ceil(float(reach.max())) + 1  # the widest window in the batch
    x = lo + torch.arange(taps, device=dev, dtype=torch.float64)  # (B, out, taps) source columns
    w = weight((x - centre[..., None] + 0.5) / filter_scale) * (x < hi)
    total = w.sum(-1, keepdim=True)
    w = w / total.where(total != 0, torch.ones_like(total))
    return dense.scatter_add_(2, x.clamp(max=width - 1).long(), w.float())  # (B, out, width)


def _resize_padded(padded: torch.Tensor, sizes: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """(B, C, H, W) zero-padded uint8 images of (B, 2) true (h, w) sizes -> (B, C, *size) uint8."""
    out_h, out_w = size
    wx = resample_matrix(sizes[:, 1], boxes[:, 0], boxes[:, 2], out_w, padded.shape[-1], interpolation)  # (B, out_w, W)
    wy = resample_matrix(sizes[:, 0], boxes[:, 1], boxes[:, 3], out_h, padded.shape[-2], interpolation)  # (B, out_h, H)
    # Pillow resamples horizontally first and rounds to 8 bits in between
    rows = (padded.float() @ wx.transpose(1, 2)[:, None]).round_().clamp_(0, 255)  # (B, C, H, out_w)
    return (wy[:, None] @ rows).round_().clamp_(0, 255).to(torch.uint8)  # (B, C, out_h, out_w)


def resize_boxes(images: Sequence[torch.Tensor], boxes: torch.Tensor, size: tuple[int, int], interpolation: str = "bicubic", budget: int = PAD_BUDGET) -> torch.Tensor:
    """Resize the box of each image to ``size``, as ``PIL.Image.resize(size[::-1], filter, box=box)`` does.

    Images of different sizes are zero-padded into batches of at most ``budget`` padded pixels (similar
    sizes together), so a few large images never multiply the memory of the many small ones.

    Args:
        images: (C, h, w) uint8 tensors, all on one device.
        boxes: (B, 4) source-pixel boxes (left, top, right, bottom), floats allowed.
        size: (H, W) out.
        interpolation: ``Preprocess.interpolation``'s filter name.

    Shape:
        returns (B, C, H, W) uint8 on the images' device, in the order given.
    """
    if not images:
        raise ValueError("expected at least one image, got none")
    device = images[0].device
    sizes = torch.tensor([tuple(im.shape[-2:]) for im in images], dtype=torch.int64)
    order = sorted(range(len(images)), key=lambda i: (int(sizes[i, 0]), int(sizes[i, 1])))
    out = torch.empty(len(images), images[0].shape[0], *size, dtype=torch.uint8, device=device)
    for group in _groups(order, sizes, budget):
        h, w = (int(v) for v in sizes[group].max(0).values)
        padded = torch.zeros(len(group), images[0].shape[0], h, w, dtype=torch.uint8, device=device)
        for row, i in enumerate(group):
            padded[row, :, : images[i].shape[-2], : images[i].shape[-1]] = images[i]
        index = torch.tensor(group, device=device)
        out[index] = _resize_padded(padded, sizes[group].to(device), boxes[group].to(device), size, interpolation)
    return out


def _groups(order: list[int], sizes: torch.Tensor, budget: int) -> list[list[int]]:
    """Consecutive runs of ``order`` whose padded size (count x max h x max w) stays within ``budget`` (one image at least)."""
    groups: list[list[int]] = []
    current: list[int] = []
    max_h = max_w = 0
    for i in order:
        h, w = int(sizes[i, 0]), int(sizes[i, 1])
        if current and (len(current) + 1) * max(max_h, h) * max(max_w, w) > budget:
            groups.append(current)
            current, max_h, max_w = [], 0, 0
        current.append(i)
        max_h, max_w = max(max_h, h), max(max_w, w)
    return groups + [current] if current else groups


def center_boxes(preprocess: Preprocess, sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
    """The evaluation crop box (``Preprocess.crop_box``) of each (h, w) image size, as a (B, 4) float64 tensor."""
    return torch.tensor([preprocess.crop_box(w, h) for h, w in sizes], dtype=torch.float64).reshape(-1, 4)


def eval_view(preprocess: Preprocess, images: Sequence[torch.Tensor]) -> torch.Tensor:
    """The network's evaluation input for each upright (3, h, w) uint8 image: ``Preprocess.to_uint8`` on tensors.

    Shape:
        returns (B, 3, *preprocess.input_size) uint8 on the images' device.
    """
    boxes = center_boxes(preprocess, [tuple(im.shape[-2:]) for im in images])
    return resize_boxes(images, boxes, preprocess.input_size, preprocess.interpolation)


# EXIF orientation -> the operation ``PIL.ImageOps.exif_transpose`` applies, on a (..., H, W) tensor
_ORIENT: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {
    2: lambda x: x.flip(-1),  # FLIP_LEFT_RIGHT
    3: lambda x: x.flip(-2, -1),  # ROTATE_180
    4: lambda x: x.flip(-2),  # FLIP_TOP_BOTTOM
    5: lambda x: x.transpose(-2, -1),  # TRANSPOSE
    6: lambda x: torch.rot90(x, -1, (-2, -1)),  # ROTATE_270 (clockwise)
    7: lambda x: x.transpose(-2, -1).flip(-2, -1),  # TRANSVERSE
    8: lambda x: torch.rot90(x, 1, (-2, -1)),  # ROTATE_90 (counter-clockwise)
}


def upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """``image`` turned upright by its EXIF ``orientation`` (1-8; anything else leaves it as it is)."""
    op = _ORIENT.get(int(orientation))
    return op(image).contiguous() if op is not None else image


def draft_factor(width: int, height: int, draft: tuple[int, int] | None) -> int:
    """The scale (1, 2, 4 or 8) at which Pillow's JPEG ``draft(None, draft)`` decodes a ``width`` x ``height`` image."""
    if draft is None:
        return 1
    scale = min(width // draft[0], height // draft[1])
    return next((s for s in (8, 4, 2) if scale >= s), 1)


def shrink(image: torch.Tensor, factor: int) -> torch.Tensor:
    """``image`` reduced ``factor`` times by averaging ``factor`` x ``factor`` blocks (edge blocks partial), the size
    and, closely, the pixels of a JPEG decoded at 1/``factor`` scale (what the CPU path's draft decoding gives).

    Shape:
        image (C, h, w) uint8; returns (C, ceil(h / factor), ceil(w / factor)) uint8.
    """
    if factor == 1:
        return image
    pooled = torch.nn.functional.avg_pool2d(image[None].float(), factor, ceil_mode=True)[0]
    return pooled.round_().to(torch.uint8)


def random_crop_boxes(
    sizes: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.35, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3), tries: int = 10
) -> torch.Tensor:
    """One random-resized-crop box per image, drawn as torchvision's ``RandomResizedCrop.get_params`` draws it
    (area share in ``scale``, log-uniform aspect ``ratio``, ``tries`` attempts, then the centre crop clamped to
    ``ratio``), but independently for every image of a batch.

    Args:
        sizes: (B, 2) image (h, w).
        generator: the CPU generator all draws come from (the same seed gives the same boxes).

    Shape:
        returns (B, 4) float64 (left, top, right, bottom), integer-valued, on the CPU.
    """
    sizes = sizes.to("cpu", torch.float64)
    height, width = sizes[:, 0:1], sizes[:, 1:2]  # (B, 1)
    n = len(sizes)
    area = height * width * torch.empty(n, tries, dtype=torch.float64).uniform_(*scale, generator=generator)
    aspect = torch.exp(torch.empty(n, tries, dtype=torch.float64).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator))
    w = torch.round(torch.sqrt(area * aspect))  # (B, tries)
    h = torch.round(torch.sqrt(area / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))  # the first try that fits, per image
    pick = first.clamp(min=0)[:, None]
    w, h = w.gather(1, pick)[:, 0], h.gather(1, pick)[:, 0]
    fw, fh = _fallback(width[:, 0], height[:, 0], ratio)
    fits = first >= 0
    w, h = torch.where(fits, w, fw), torch.where(fits, h, fh)
    u = torch.rand(n, 2, dtype=torch.float64, generator=generator)
    top = torch.where(fits, torch.floor(u[:, 0] * (height[:, 0] - h + 1)), torch.floor((height[:, 0] - h) / 2))
    left = torch.where(fits, torch.floor(u[:, 1] * (width[:, 0] - w + 1)), torch.floor((width[:, 0] - w) / 2))
    return torch.stack([left, top, left + w, top + h], 1)


def _fallback(width: torch.Tensor, height: torch.Tensor, ratio: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's crop when no try fits: the whole image, cut to the nearest allowed aspect ratio."""
    in_ratio = width / height
    narrow, wide = in_ratio < min(ratio), in_ratio > max(ratio)
    w = torch.where(wide, torch.round(height * max(ratio)), width)
    h = torch.where(narrow, torch.round(width / min(ratio)), height)
    return w, h


def random_flips(images: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Each image of the batch mirrored left-right with probability ``p`` (drawn per image); a new tensor.

    Shape:
        images (B, C, H, W); returns the same shape.
    """
    flip = (torch.rand(len(images), generator=generator) < p).to(images.device)[:, None, None, None]
    return torch.where(flip, images.flip(-1), images)
