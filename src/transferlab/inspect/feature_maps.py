"""Feature maps: what one layer of the network computes from a photo, channel by channel."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import ConfigError
from ..models import ImageClassifier
from .hooks import as_map, capture, default_stage, forward_eval, stage_layer


@dataclass
class FeatureMaps:
    """The activation of one layer for one image, with its channels ranked by mean activation.

    Shape:
        image (1, 3, H, W) in [0, 1]; activation (1, C, h, w); strength (C,).
    """

    layer: str
    image: torch.Tensor
    activation: torch.Tensor
    strength: torch.Tensor  # mean activation per channel

    def top(self, n: int) -> list[int]:
        """Indices of the ``n`` most active channels, strongest first."""
        return torch.argsort(self.strength, descending=True)[:n].tolist()


def feature_maps(model: ImageClassifier, image: torch.Tensor, layer: str | None = None, stage: int | None = None) -> FeatureMaps:
    """Run ``image`` through ``model`` and return what ``layer`` (or the ``stage``-th feature level) outputs.

    Without either, the middle feature level (``default_stage``).

    Raises:
        ConfigError: both given, an unknown layer, a stage out of range, or a layer without a 4-D output.

    Shape:
        image (1, 3, H, W) in [0, 1].
    """
    if layer is not None and stage is not None:
        raise ConfigError("expected --layer or --stage, got both — give one")
    name = layer if layer is not None else stage_layer(model, stage if stage is not None else default_stage(model))
    with capture(model.net, [name]) as acts:
        forward_eval(model, image)
    activation = as_map(model.net, acts[name], name) if name in acts else None  # ViT tokens shown on the patch grid
    if activation is None:
        got = "no tensor" if name not in acts else f"shape {tuple(acts[name].shape)}"
        raise ConfigError(f"expected layer {name!r} to output a (B, C, H, W) map or patch tokens, got {got} — pick one from --list-layers")
    activation = activation.float().cpu()
    return FeatureMaps(name, image.detach().float().cpu(), activation, activation[0].mean(dim=(1, 2)))


def _colourise(values: torch.Tensor, cmap: str = "viridis") -> Image.Image:
    """A 2-D map scaled to its own min..max and coloured (each channel has its own range)."""
    from matplotlib import colormaps

    v = values.numpy().astype(np.float64)
    span = v.max() - v.min()
    v = (v - v.min()) / span if span > 0 else np.zeros_like(v)
    return Image.fromarray((colormaps[cmap](v)[..., :3] * 255).astype(np.uint8))


def feature_grid(maps: FeatureMaps, top: int = 16, tile: int = 112, columns: int | None = None) -> Image.Image:
    """The input photo, then the ``top`` most active channels (each scaled to its own range), captioned."""
    from .dream import to_pil

    channels = maps.top(top)
    tiles = [("input", to_pil(maps.image[0]).resize((tile, tile), Image.Resampling.BILINEAR))]
    tiles += [(f"ch {c}  {float(maps.strength[c]):.2f}", _colourise(maps.activation[0, c]).resize((tile, tile), Image.Resampling.NEAREST)) for c in channels]
    cols = columns or min(len(tiles), max(4, math.ceil(math.sqrt(len(tiles)))))
    rows = math.ceil(len(tiles) / cols)
    caption, gap, header = 14, 4, 18
    sheet = Image.new("RGB", (cols * (tile + gap) + gap, header + rows * (tile + caption + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    c, h, w = maps.activation.shape[1:]
    draw.text((gap, 3), f"{maps.layer}: {c} channels of {h}x{w}; top {len(channels)} by mean activation", fill="black")
    for k, (label, img) in enumerate(tiles):
        x, y = gap + (k % cols) * (tile + gap), header + (k // cols) * (tile + caption + gap)
        draw.text((x, y), label, fill="black")
        sheet.paste(img, (x, y + caption))
    return sheet
