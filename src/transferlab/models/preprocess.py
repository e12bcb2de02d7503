"""Preprocessing record: how a backbone expects its pixels, taken from timm's data config.

The record travels with the weights and with every trained run, so prediction, evaluation and the
feature cache all build the same transform from it instead of guessing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

_PIL_INTERPOLATION = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


@dataclass(frozen=True)
class Preprocess:
    """Eval-time preprocessing of one backbone (timm's ``resolve_data_config`` fields)."""

    input_size: tuple[int, int]  # (H, W) fed to the network
    interpolation: str = "bicubic"  # resize filter
    crop_pct: float = 0.875  # input_size / resize size: the centre crop keeps this fraction
    crop_mode: str = "center"  # "center" keeps the aspect ratio, "squash" does not
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # per-channel, on [0, 1] pixels
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @classmethod
    def from_timm(cls, model: torch.nn.Module, **overrides: Any) -> "Preprocess":
        """Build the record from a timm model's pretrained config (``timm.data.resolve_data_config``)."""
        from timm.data import resolve_data_config

        cfg = resolve_data_config(model=model)
        cfg.update(overrides)
        _, h, w = cfg["input_size"]
        return cls(
            input_size=(int(h), int(w)),
            interpolation=str(cfg.get("interpolation", "bicubic")),
            crop_pct=float(cfg.get("crop_pct", 0.875)),
            crop_mode=str(cfg.get("crop_mode", "center")),
            mean=tuple(float(m) for m in cfg["mean"]),  # type: ignore[arg-type]
            std=tuple(float(s) for s in cfg["std"]),  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        return cls(
            input_size=(int(d["input_size"][0]), int(d["input_size"][1])),
            interpolation=str(d["interpolation"]),
            crop_pct=float(d["crop_pct"]),
            crop_mode=str(d["crop_mode"]),
            mean=tuple(float(m) for m in d["mean"]),  # type: ignore[arg-type]
            std=tuple(float(s) for s in d["std"]),  # type: ignore[arg-type]
        )

    @property
    def resize_size(self) -> tuple[int, int]:
        """Size of the resized image before the centre crop, (H, W) as in timm's eval transform."""
        h, w = self.input_size
        return math.floor(h / self.crop_pct), math.floor(w / self.crop_pct)

    def key(self) -> str:
        """A stable string identifying this preprocessing, for cache keys."""
        d = self.to_dict()
        return ";".join(f"{k}={d[k]}" for k in sorted(d))

    def crop_box(self, width: int, height: int) -> tuple[float, float, float, float]:
        """Source-pixel box that timm's eval transform (torchvision Resize + CenterCrop) keeps.

        Resizing this box straight to ``input_size`` uses the same filter scale as resizing the whole
        image and then cropping, at about half the cost.
        """
        out_h, out_w = self.input_size
        rh, rw = self.resize_size
        if self.crop_mode != "squash" and rh == rw:  # keep aspect: the shorter side becomes rh
            if width <= height:
                rw, rh = rh, int(rh * height / width)
            else:
                rw, rh = int(rh * width / height), rh
        sx, sy = width / rw, height / rh  # source pixels per resized pixel
        left, top = int(round((rw - out_w) / 2.0)), int(round((rh - out_h) / 2.0))  # torchvision's CenterCrop
        return left * sx, top * sy, (left + out_w) * sx, (top + out_h) * sy

    def to_uint8(self, image: Image.Image) -> torch.Tensor:
        """Resize + centre-crop an RGB image into a uint8 tensor; normalisation happens in the model.

        A single Pillow resize of the crop box is about twice as fast as resizing then cropping, and
        keeping uint8 until the model quarters the memory moved between decoding workers.

        Shape:
            returns (3, H, W) uint8.
        """
        out_h, out_w = self.input_size
        box = self.crop_box(*image.size)
        resized = image.resize((out_w, out_h), _PIL_INTERPOLATION[self.interpolation], box=box)
        array = np.asarray(resized, dtype=np.uint8)  # (H, W, 3)
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """The model's evaluation view of ``image`` as floats in [0, 1] (what inspect/attacks work on).

        Shape:
            returns (3, H, W) float32.
        """
        return self.to_uint8(image).float().div_(255)

    def draft_size(self) -> tuple[int, int]:
        """Smallest decode size that keeps full quality: JPEG can decode at 1/2, 1/4, 1/8 scale."""
        rh, rw = self.resize_size
        side = max(rh, rw)
        return side, side
