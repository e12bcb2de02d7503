"""Deterministic extra views of a photo (mirrored, shifted crops) for the probe's training rows and for
test-time augmentation; each view's features are cached apart from the plain ones.

A view changes only where the evaluation crop is taken and whether it is mirrored, never its scale: the
shifted crops move timm's centre crop towards a corner of the resized image, by the margin the centre crop
leaves (at most an eighth of the crop), so a backbone with ``crop_pct`` 1.0 shifts only along an image's
longer side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data import open_rgb
from ..errors import ConfigError
from ..models.preprocess import _PIL_INTERPOLATION, Preprocess
from .cache import FeatureCache

VIEWS = ("flip", "shift-tl", "shift-br")  # the extra views, in the order ``views=N`` / ``tta=N`` takes them
MAX_SHIFT = 1 / 8  # of the crop's side: the most a shifted crop moves along one axis


def view_names(n: int | bool) -> tuple[str, ...]:
    """The first ``n`` extra views (True: all of them, False: none).

    Raises:
        ConfigError: ``n`` outside 0..len(VIEWS).
    """
    if isinstance(n, bool):
        return VIEWS if n else ()
    if not 0 <= int(n) <= len(VIEWS):
        raise ConfigError(f"expected 0 to {len(VIEWS)} extra views ({', '.join(VIEWS)}), got {n}")
    return VIEWS[: int(n)]


def shifted_box(preprocess: Preprocess, width: int, height: int, sign: int) -> tuple[float, float, float, float]:
    """The centre crop's source box moved towards the top-left (``sign`` -1) or bottom-right (+1) corner,
    by the margin the image leaves on that side, at most ``MAX_SHIFT`` of the box."""
    left, top, right, bottom = preprocess.crop_box(width, height)
    dx = min(MAX_SHIFT * (right - left), left if sign < 0 else width - right)
    dy = min(MAX_SHIFT * (bottom - top), top if sign < 0 else height - bottom)
    dx, dy = max(dx, 0.0) * sign, max(dy, 0.0) * sign
    return left + dx, top + dy, right + dx, bottom + dy


def view_uint8(image: Image.Image, preprocess: Preprocess, view: str | None) -> torch.Tensor:
    """``view`` of an RGB image at the network's input size (None: the plain evaluation view).

    Shape:
        returns (3, H, W) uint8.
    """
    if view is None:
        return preprocess.to_uint8(image)
    if view == "flip":
        return preprocess.to_uint8(image).flip(-1)  # (3, H, W): mirrored along W
    if view not in VIEWS:
        raise ConfigError(f"expected a view in {', '.join(VIEWS)}, got {view!r}")
    out_h, out_w = preprocess.input_size
    box = shifted_box(preprocess, *image.size, sign=-1 if view == "shift-tl" else 1)
    resized = image.resize((out_w, out_h), _PIL_INTERPOLATION[preprocess.interpolation], box=box)
    return torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1)


def load_view(source: Path | bytes, preprocess: Preprocess, view: str | None) -> torch.Tensor:
    """Read and decode one file (as ``extract.load_image`` does) and take ``view`` of it. Raises BadImageError, OSError."""
    image = open_rgb(source if isinstance(source, bytes) else Path(source).read_bytes(), draft=preprocess.draft_size())
    return view_uint8(image, preprocess, view)


def view_cache(cache: FeatureCache, view: str | None) -> FeatureCache:
    """The cache of ``view``'s features beside ``cache`` (the plain view's): its key is the plain key plus the
    view, so plain features keep the key they always had."""
    if view is None:
        return cache
    return FeatureCache(cache.dir.parents[1], {**cache.key, "view": view})
