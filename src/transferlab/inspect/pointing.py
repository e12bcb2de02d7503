"""The pointing game (Zhang et al., "Top-down Neural Attention by Excitation Backprop", 2016): does the
peak of a heat map fall on the object? Pure functions over points, masks and boxes.

A heat map is computed on the model's view of a photo (resized, centre-cropped); annotations are in the
photo's own pixels, so the peak is mapped back through the crop box first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[float, float, float, float]  # (left, top, right, bottom) in photo pixels


def to_photo(point: tuple[int, int], view_size: tuple[int, int], crop_box: Box) -> tuple[float, float]:
    """(row, col) of a pixel of the model's view -> (x, y) of its centre in the photo.

    Args:
        point: (row, col) in the view.
        view_size: the view's (H, W).
        crop_box: the photo region the view shows (``Preprocess.crop_box``).
    """
    row, col = point
    h, w = view_size
    left, top, right, bottom = crop_box
    return left + (col + 0.5) * (right - left) / w, top + (row + 0.5) * (bottom - top) / h


def in_mask(xy: tuple[float, float], mask: np.ndarray) -> bool:
    """Whether the photo pixel under (x, y) is set in a boolean (H, W) mask (outside the photo: False)."""
    x, y = int(np.floor(xy[0])), int(np.floor(xy[1]))
    return 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1] and bool(mask[y, x])


def in_boxes(xy: tuple[float, float], boxes: Sequence[Box]) -> bool:
    """Whether (x, y) lies inside (edges included) any of the boxes."""
    x, y = xy
    return any(left <= x <= right and top <= y <= bottom for left, top, right, bottom in boxes)


def hit_rate(hits: Sequence[bool]) -> float | None:
    """Share of True, or None for no cases (so "no annotations" is never reported as 0 %)."""
    return float(np.mean(hits)) if len(hits) else None
