"""Ideal class images: ``dream`` and its result ``Dream`` (see the package docstring)."""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ...models.state import eval_mode
from ..._io import atomic_write_bytes
from ...errors import ConfigError
from ..._io import write_json
from ...models import ImageClassifier, resolve_class
from ...models.classes import top_k
from ...models.images import png_bytes, to_pil
from .objectives import Objective, Step, class_log_prob, class_logit, class_prob, l2, total_variation, tv_per_pixel
from .config import DEFAULT_TV, OBJECTIVES, DreamConfig
from .param import PARAMS, FFTParam, ImageParam, PixelParam, make_param
from .render import Rendered, StepCallback, frame_steps, render
from .transforms import compose, jitter, pad, random_rotate, random_scale, standard_transforms

@dataclass
class Dream:
    """An ideal class image and how sure the model is of it.

    ``probability`` is the model's on the float image as optimised; ``probability_png`` on the saved 8-bit
    PNG read back through the model's own evaluation preprocessing (what ``transferlab predict`` sees),
    with ``top`` the five best classes there. At the model's input size the PNG is framed by a mirrored
    border up to the resize size (``frame``), so the evaluation crop of the file is exactly the image
    optimised. ``tv_per_pixel``: see ``objectives.tv_per_pixel``.

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
    frame: tuple[int, int, int, int] = (0, 0, 0, 0)  # mirrored border (left, right, top, bottom) of the saved PNG

    def __rich__(self) -> str:
        """How sure the model is of the image, before and after the PNG round trip, and its smoothness."""
        from rich.markup import escape

        best = self.top[0]
        return (
            f"{escape(self.class_name)}: probability {self.probability:.3f}, after the 8-bit PNG round trip [bold]{self.probability_png:.3f}[/]"
            f" (top-1 {escape(best['label'])} {best['prob']:.3f}); total variation per pixel {self.tv_per_pixel:.4f}; {self.seconds:.1f} s"
        )

    def _repr_html_(self) -> str:
        """The image (as optimised, unframed) and what ``__rich__`` says: class, probabilities, total variation."""
        from ... import _html

        side = int(self.image.shape[-1])
        return _html.block(_html.img(to_pil(self.image[0]), alt=f"ideal {self.class_name} image", width=max(224, side)), _html.markup(self.__rich__()), title="Dream")

    def to_pil(self) -> Image.Image:
        """The image as saved: framed for the evaluation crop."""
        return to_pil(F.pad(self.image, self.frame, mode="reflect")[0] if any(self.frame) else self.image[0])

    def png_bytes(self) -> bytes:
        return png_bytes(self.to_pil())

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
            atomic_write_bytes(files["frames"], png_bytes(frame_sheet(self.frames)))
        return files


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
    with eval_mode(model):
        device = next(model.parameters()).device
        return torch.softmax(model(image.to(device)).float(), dim=1).cpu()


def crop_frame(preprocess, height: int, width: int) -> tuple[int, int, int, int]:  # noqa: ANN001
    """(left, right, top, bottom) border that makes an image of the input size survive the evaluation
    resize + centre crop unchanged: the file is the resize size, and the crop box is the image. Zero for
    other sizes (``DreamConfig.size``) or squashing crops, which are then resized as any photo is."""
    out_h, out_w = preprocess.input_size
    rh, rw = preprocess.resize_size
    if (height, width) != (out_h, out_w) or preprocess.crop_mode == "squash" or rh != rw or out_h != out_w:
        return (0, 0, 0, 0)
    left, top = int(round((rw - out_w) / 2.0)), int(round((rh - out_h) / 2.0))
    return (left, rw - out_w - left, top, rh - out_h - top)


def png_round_trip(model: ImageClassifier, image: torch.Tensor, frame: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """``image`` saved as an 8-bit PNG (framed, see ``crop_frame``) and read back as the model reads
    photos (resize, centre crop): what ``transferlab predict`` computes on the saved file.

    Shape:
        (1, 3, H, W) in [0, 1] -> (1, 3, h, w), the model's input size.
    """
    frame = crop_frame(model.preprocess, *image.shape[-2:]) if frame is None else frame
    framed = F.pad(image, frame, mode="reflect") if any(frame) else image
    decoded = Image.open(io.BytesIO(png_bytes(to_pil(framed[0])))).convert("RGB")
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
    frame = crop_frame(model.preprocess, *image.shape[-2:])
    p_float = float(class_probabilities(model, image)[0, index])
    probs = class_probabilities(model, png_round_trip(model, image, frame))[0]
    top = top_k(probs, model.classes)
    return Dream(
        image, index, model.classes[index], p_float, float(probs[index]), top, float(tv_per_pixel(image)[0]),
        result.seconds, config, result.history, result.frames, frame,
    )


__all__ = [
    "DEFAULT_TV", "OBJECTIVES", "PARAMS", "Dream", "DreamConfig", "FFTParam", "ImageParam", "Objective", "PixelParam", "Rendered", "Step",
    "build_objective", "crop_frame", "class_log_prob", "class_logit", "class_prob", "class_probabilities", "compose", "dream", "frame_sheet",
    "frame_steps", "jitter", "l2", "make_param", "pad", "png_round_trip", "random_rotate", "random_scale", "render",
    "standard_transforms", "to_pil", "total_variation", "tv_per_pixel",
]
