"""Ideal class images: optimise an image from noise (or a photo) until the network is sure of a class.

Built lucent-style from four parts: ``param`` (how the image is represented, always in [0, 1]),
``transforms`` (random jitter/scale/rotate each step), ``objectives`` (class logit minus weighted total
variation and L2, composable) and ``render`` (the loop). ``dream`` puts them together with a recipe that
works across classes and models (``DreamConfig``'s defaults, chosen by ``benchmarks/dream.py``).
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..._io import atomic_write_bytes
from ...errors import ConfigError
from ...models import ImageClassifier, resolve_class, write_json
from .objectives import Objective, Step, class_log_prob, class_logit, class_prob, l2, total_variation, tv_per_pixel
from .param import PARAMS, FFTParam, ImageParam, PixelParam, make_param
from .render import Rendered, StepCallback, frame_steps, render
from .transforms import compose, jitter, pad, random_rotate, random_scale, standard_transforms

OBJECTIVES = ("logit", "log_prob")
# Default TV weight per parameterisation. Adam moves every free pixel by about lr per step whatever its
# gradient, so the pixel param needs a stronger pull to smoothness than the fft one, whose 1/f scaling
# already favours low frequencies; on fft, 1000 gives flat saturated blobs (BENCHMARKS.md).
DEFAULT_TV = {"pixel": 1000.0, "fft": 300.0}


@dataclass(frozen=True)
class DreamConfig:
    """The recipe of an ideal class image; the defaults are the benchmarked ones (BENCHMARKS.md)."""

    steps: int = 256  # Adam steps
    lr: float = 0.05  # Adam learning rate on the image parameters
    size: int | None = None  # side of the square image in pixels; None: the model's input size
    seed: int = 0  # noise and transform draws
    tv: float | None = None  # weight of the total variation per pixel subtracted (0: none; None: DEFAULT_TV[param])
    l2: float = 100.0  # weight of the mean squared distance from grey subtracted (keeps colours off saturation)
    param: str = "fft"  # "fft" (1/f spectrum, decorrelated colour) or "pixel" (free pixels)
    decorrelate: bool | None = None  # colour decorrelation; None: on for fft, off for pixel
    jitter: int = 8  # random shift in pixels (0: off)
    scale: float = 0.1  # random zoom 1 ± scale (0: off)
    rotate: float = 10.0  # random rotation ± degrees (0: off)
    objective: str = "logit"  # "logit" (raise the class) or "log_prob" (raise it against the others)
    frames: int = 0  # also keep this many snapshots of the optimisation

    def check(self) -> None:
        """Raise ConfigError for a value outside its range, before any work."""
        if self.param not in PARAMS:
            raise ConfigError(f"expected param in {PARAMS}, got {self.param!r}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"expected objective in {OBJECTIVES}, got {self.objective!r}")
        for name in ("steps", "frames", "jitter"):
            if getattr(self, name) < 0:
                raise ConfigError(f"expected {name} >= 0, got {getattr(self, name)}")
        for name in ("lr", "tv", "l2", "scale", "rotate"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ConfigError(f"expected {name} >= 0, got {getattr(self, name)}")
        if self.lr == 0:
            raise ConfigError("expected lr > 0, got 0")
        if self.scale >= 1:
            raise ConfigError(f"expected scale < 1 (zoom 1 ± scale), got {self.scale}")
        if self.size is not None and not 16 <= self.size <= 2048:
            raise ConfigError(f"expected size between 16 and 2048 pixels, got {self.size}")

    @property
    def tv_weight(self) -> float:
        """The TV weight in force: ``tv``, or the parameterisation's default."""
        return DEFAULT_TV.get(self.param, 0.0) if self.tv is None else self.tv


@dataclass
class Dream:
    """An ideal class image and how sure the model is of it.

    ``probability`` is the model's on the float image as optimised; ``probability_png`` on the saved 8-bit
    PNG read back through the model's own evaluation preprocessing (what ``transferlab predict`` sees),
    with ``top`` the five best classes there. ``tv_per_pixel``: see ``objectives.tv_per_pixel``.

    Shape:
        image (1, 3, H, W) float in [0, 1].
    """

    image: torch.Tensor
    class_index: int
    class_name: str
    probability: float
    probability_png: float
    top: list[dict[str, Any]]
    tv_per_pixel: float
    seconds: float
    config: DreamConfig
    history: list[float] = field(default_factory=list)
    frames: list[tuple[int, torch.Tensor]] = field(default_factory=list)

    def to_pil(self) -> Image.Image:
        return to_pil(self.image[0])

    def png_bytes(self) -> bytes:
        return _png_bytes(self.to_pil())

    def summary(self) -> dict[str, Any]:
        """The numbers saved beside the PNG."""
        return {
            "class": self.class_name, "class_index": self.class_index, "probability": self.probability,
            "probability_png": self.probability_png, "top_png": self.top, "tv_per_pixel": self.tv_per_pixel,
            "seconds": round(self.seconds, 2), "size": list(self.image.shape[-2:]), "config": {**asdict(self.config), "tv": self.config.tv_weight},
            "objective_first_last": [self.history[0], self.history[-1]] if self.history else None,
        }

    def save(self, path: Path | str) -> dict[str, Path]:
        """Write the PNG, its JSON summary beside it (same name, ``.json``) and, with frames, ``*_frames.png``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        files = {"image": path, "summary": path.with_suffix(".json")}
        atomic_write_bytes(path, self.png_bytes())
        write_json(files["summary"], self.summary())
        if self.frames:
            files["frames"] = path.with_name(f"{path.stem}_frames.png")
            atomic_write_bytes(files["frames"], _png_bytes(frame_sheet(self.frames)))
        return files


def to_pil(image: torch.Tensor) -> Image.Image:
    """A (3, H, W) image in [0, 1] as an 8-bit RGB PIL image (rounded, not truncated)."""
    array = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def frame_sheet(frames: list[tuple[int, torch.Tensor]], columns: int = 8) -> Image.Image:
    """The snapshots side by side at full resolution, each captioned with its step."""
    tiles = [to_pil(img[0]) for _, img in frames]
    w, h = tiles[0].size
    caption = 14
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    sheet = Image.new("RGB", (cols * (w + 4) + 4, rows * (h + caption + 4) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for k, ((step, _), tile) in enumerate(zip(frames, tiles)):
        x, y = 4 + (k % cols) * (w + 4), 4 + (k // cols) * (h + caption + 4)
        draw.text((x, y), f"step {step}", fill="black")
        sheet.paste(tile, (x, y + caption))
    return sheet


def build_objective(index: int, config: DreamConfig) -> Objective:
    """The class term minus the weighted regularisers, as one composable objective."""
    target = class_logit(index) if config.objective == "logit" else class_log_prob(index)
    if config.tv_weight > 0:
        target = target - config.tv_weight * total_variation()
    if config.l2 > 0:
        target = target - config.l2 * l2()
    return target


@torch.no_grad()
def class_probabilities(model: ImageClassifier, image: torch.Tensor) -> torch.Tensor:
    """Softmax of the model on ``image`` in eval mode (mode restored). Shape: (B, 3, H, W) -> (B, C)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        return torch.softmax(model(image.to(device)).float(), dim=1).cpu()
    finally:
        model.train(was_training)


def png_round_trip(model: ImageClassifier, image: torch.Tensor) -> torch.Tensor:
    """``image`` saved as an 8-bit PNG and read back as the model reads photos (resize, centre crop).

    Shape:
        (1, 3, H, W) in [0, 1] -> (1, 3, h, w), the model's input size.
    """
    decoded = Image.open(io.BytesIO(_png_bytes(to_pil(image[0])))).convert("RGB")
    return model.preprocess.to_tensor(decoded).unsqueeze(0)


def dream(
    model: ImageClassifier,
    target: int | str,
    config: DreamConfig = DreamConfig(),
    *,
    init: torch.Tensor | None = None,
    progress: StepCallback | None = None,
) -> Dream:
    """The image that maximises class ``target`` for ``model``, optimised in [0, 1] pixel space.

    Args:
        model: an ImageClassifier (its normalisation is applied inside, so the image is plain pixels).
        target: a class index or name, exact or fuzzy ("siamese" -> "Siamese cat").
        config: the recipe (see DreamConfig).
        init: start from this photo instead of noise (resized to the dream's size).
        progress: called with (steps done, steps).

    Raises:
        ConfigError: unknown or ambiguous class, or a config value out of range.

    Shape:
        init (1, 3, H, W) in [0, 1]; the result's image (1, 3, size, size) in [0, 1].
    """
    config.check()
    index = resolve_class(model.classes, target)
    side = config.size or model.preprocess.input_size[0]
    torch.manual_seed(config.seed)  # the transforms' draws; the param has its own generator
    param = make_param(config.param, (1, 3, side, side), decorrelate=config.decorrelate, seed=config.seed)
    if init is not None:
        if init.ndim != 4 or init.shape[:2] != (1, 3):
            raise ConfigError(f"expected a (1, 3, H, W) start image, got shape {tuple(init.shape)}")
        param.start_from(F.interpolate(init.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=True))
    transforms = standard_transforms(config.jitter, config.scale, config.rotate)
    result = render(model, build_objective(index, config), param, transforms, steps=config.steps, lr=config.lr, frames=config.frames, progress=progress)
    image = result.image
    p_float = float(class_probabilities(model, image)[0, index])
    probs = class_probabilities(model, png_round_trip(model, image))[0]
    top = [{"label": model.classes[j], "prob": float(probs[j])} for j in torch.argsort(probs, descending=True)[:5].tolist()]
    return Dream(
        image, index, model.classes[index], p_float, float(probs[index]), top, float(tv_per_pixel(image)[0]),
        result.seconds, config, result.history, result.frames,
    )


__all__ = [
    "DEFAULT_TV", "OBJECTIVES", "PARAMS", "Dream", "DreamConfig", "FFTParam", "ImageParam", "Objective", "PixelParam", "Rendered", "Step",
    "build_objective", "class_log_prob", "class_logit", "class_prob", "class_probabilities", "compose", "dream", "frame_sheet",
    "frame_steps", "jitter", "l2", "make_param", "pad", "png_round_trip", "random_rotate", "random_scale", "render",
    "standard_transforms", "to_pil", "total_variation", "tv_per_pixel",
]
