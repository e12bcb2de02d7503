"""What the service does with a run, without any web framework: limits, decoding uploads, inference on
replicas of the model, the model card and the page. ``api`` puts routes on it; ``app`` starts it.

An upload is decoded as ``predict`` decodes a file (``features.load_image``), its features computed at the
precision ``predict`` picks, and scored by ``run.prediction``: the page answers what ``predict`` answers."""

from __future__ import annotations

import asyncio
import copy
import io
import logging
from dataclasses import dataclass
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..data import open_rgb
from ..data.decode import BadImageError
from .._html import png_data_url
from ..errors import ConfigError
from ..features import features_of_images, pick_runtime
from ..inspect.gradcam import gradcam
from ..inspect.hooks import last_conv_layer
from ..models.images import to_pil
from ..models.state import inference_copy
from ..run.prediction import Prediction, predict_features, unsure_setting
from ..run.record import ServeSettings
from ..run.run import Run, load

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = ServeSettings().unsure_below  # "not sure" below this top probability when the run stores none


@dataclass(frozen=True)
class ServeConfig:
    """Limits and behaviour of the service; ``transferlab serve`` flags map onto these fields."""

    max_bytes: int = 20_000_000  # largest upload accepted (one file, and one request)
    max_pixels: int = 40_000_000  # decoded width x height above which an upload is refused as a decompression bomb
    max_files: int = 16  # images per request
    workers: int = 1  # model replicas = requests inferred at the same time; the rest wait
    top_k: int = 5  # default k of /predict
    threshold: float | None = None  # "not sure" below this top probability; None: the run's stored one, else 0.5
    precision: str = "auto"  # of the features, resolved as `predict` resolves it (bf16 on CPUs with native bf16, else fp32)


def run_threshold(run: Run) -> float:
    """The "not sure" threshold stored with the run (``set_threshold``), else ``DEFAULT_THRESHOLD``."""
    return unsure_setting(run)


def set_threshold(directory: Path | str, value: float) -> None:
    """Store the "not sure" threshold in a run folder's record (``RunRecord.serve``), for ``serve`` and ``predict``."""
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"expected a threshold in [0, 1], got {value}")
    run = load(directory)
    run.record.serve = ServeSettings(unsure_below=float(value))
    run.save(directory)


class ApiError(Exception):
    """A client error: HTTP status and one sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def decode_upload(data: bytes, name: str, config: ServeConfig, draft: tuple[int, int] | None = None) -> Image.Image:
    """Upload bytes -> upright RGB image, or an ``ApiError`` saying in one sentence what is wrong with it.

    ``draft``: decode JPEGs at a reduced scale down to this size (``Preprocess.draft_size``), as ``predict`` does.
    """
    if not data:
        raise ApiError(400, f"the upload {name!r} is empty — choose a photo file")
    if len(data) > config.max_bytes:
        raise ApiError(413, f"the upload {name!r} is larger than the {config.max_bytes / 1e6:.0f} MB limit — send a smaller photo")
    try:
        with Image.open(io.BytesIO(data)) as probe:  # header only: the size before any pixel is decoded
            width, height = probe.size
    except Image.DecompressionBombError:
        raise ApiError(413, f"the upload {name!r} would decode to a dangerously large image (decompression bomb) — send an ordinary photo") from None
    except Exception:  # Pillow raises many types for non-images; all mean the same to the client
        raise ApiError(415, f"the upload {name!r} is not an image this service can read — send a JPEG, PNG, WebP, GIF, BMP or TIFF photo") from None
    if width * height > config.max_pixels:
        raise ApiError(
            413, f"the upload {name!r} is {width}x{height} pixels, over the {config.max_pixels / 1e6:.0f} MP limit (decompression bomb guard) — send a smaller photo"
        )
    try:
        return open_rgb(data, draft=draft)
    except BadImageError as err:
        raise ApiError(415, f"the upload {name!r} could not be decoded ({err.reason}) — send an intact photo") from None


class Predictor:
    """The run's model and ``workers`` replicas of it; each replica serves one request at a time."""

    def __init__(self, run: Run, config: ServeConfig) -> None:
        self.run = run
        self.config = config
        self.threshold = config.threshold if config.threshold is not None else run_threshold(run)
        self.runtime = pick_runtime(device="cpu", precision=config.precision)  # the replicas live on the CPU
        model = inference_copy(run.model)  # fp32 on the CPU in eval mode; the caller's model stays as it is
        try:
            self.layer: str | None = last_conv_layer(model)
        except Exception as err:  # a network without a spatial map: serve without Grad-CAM
            log.warning("no Grad-CAM layer found (%s); serving without overlays", err)
            self.layer = None
        self.replicas = [model] + [copy.deepcopy(model) for _ in range(max(1, config.workers) - 1)]
        self._pool: asyncio.Queue | None = None

    def decode(self, data: bytes, name: str) -> Image.Image:
        """An upload decoded as ``predict`` decodes a file (JPEGs at a reduced scale where the crop allows)."""
        return decode_upload(data, name, self.config, draft=self.run.model.preprocess.draft_size())

    async def infer(self, images: list[Image.Image], k: int, with_cam: bool) -> list[dict[str, Any]]:
        from starlette.concurrency import run_in_threadpool

        if self._pool is None:  # created inside the server's event loop
            self._pool = asyncio.Queue()
            for replica in self.replicas:
                self._pool.put_nowait(replica)
        replica = await self._pool.get()
        try:
            return await run_in_threadpool(self._infer, replica, images, k, with_cam)
        finally:
            self._pool.put_nowait(replica)

    def _infer(self, model: torch.nn.Module, images: list[Image.Image], k: int, with_cam: bool) -> list[dict[str, Any]]:
        views = torch.stack([model.preprocess.to_uint8(im) for im in images])  # (B, 3, H, W) uint8, as predict's files
        _, answers = predict_features(self.run, features_of_images(model, views, self.runtime), k, unsure_below=self.threshold)
        rows = []
        for view, answer in zip(views, answers):
            row = {**_without_path(answer), "n_classes": len(model.classes), "gradcam": None}
            if with_cam and self.layer is not None:
                x = view.float().div(255)[None]  # (1, 3, H, W) in [0, 1]
                row["gradcam"] = png_data_url(gradcam(model, x, answer.index, self.layer).overlay(0.45))
                row["input"] = png_data_url(to_pil(x[0]))  # the crop the model saw: lines up with the overlay
            rows.append(row)
        return rows

    def card(self) -> dict[str, Any]:
        record = self.run.record
        return {
            "task": record.task(self.run.classes),
            "backbone": record.backbone.name,
            "arch": record.backbone.arch,
            "strategy": record.strategy,
            "classes": self.run.classes,
            "metrics": record.metrics,
            "input_size": list(self.run.model.preprocess.input_size),
            "unsure_below": self.threshold,
            "temperature": self.run.confidence.temperature,
            "ood": {"method": self.run.confidence.method, "threshold": self.run.confidence.threshold, "accept": self.run.confidence.accept} if self.run.confidence.rejects else None,
            "gradcam_layer": self.layer,
            "created": record.created,
            "transferlab_version": record.transferlab_version,
            "data": {"counts": record.data.counts if record.data else None},
        }


def _without_path(answer: Prediction) -> dict[str, Any]:
    return {k: v for k, v in answer.to_dict().items() if k != "path"}


def page_html(run: Run | None = None) -> str:
    """The web page, titled with the question ``run`` answers."""
    import html

    task = run.record.task(run.classes) if run is not None else "Which class is it?"
    return (package_files(__package__) / "page.html").read_text(encoding="utf-8").replace("{{TASK}}", html.escape(task))

