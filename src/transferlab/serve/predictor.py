"""What the service does with a run, without any web framework: limits, decoding uploads, inference on
replicas of the model, the model card and the page. ``api`` puts routes on it; ``app`` starts it.

An upload is decoded as ``predict`` decodes a file (``features.load_image``), its features computed at the
precision ``predict`` picks, and scored by ``run.prediction``: the page answers what ``predict`` answers.
Concurrent requests share forward passes (``batcher``); the queue is bounded, and past it a request gets 503."""

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
from .batcher import Batcher, Closed, Job, Overloaded

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = ServeSettings().unsure_below  # "not sure" below this top probability when the run stores none


@dataclass(frozen=True)
class ServeConfig:
    """Limits and behaviour of the service; ``transferlab serve`` flags map onto these fields."""

    max_bytes: int = 20_000_000  # largest upload accepted (one file, and one request)
    max_pixels: int = 40_000_000  # decoded width x height above which an upload is refused as a decompression bomb
    max_files: int = 16  # images per request
    workers: int = 1  # model replicas = forward passes run at the same time; the rest wait
    batch_window_ms: float = 5.0  # a request waits at most this long for others to share its forward pass
    max_batch: int = 16  # images per forward pass
    max_queue: int = 64  # images waiting for a pass beyond which a request is refused with 503 + Retry-After
    threads: int = 0  # torch intra-op threads per replica while serving; 0: the cores less one, shared among the replicas
    top_k: int = 5  # default k of /predict
    threshold: float | None = None  # "not sure" below this top probability; None: the run's stored one, else 0.5
    precision: str = "auto"  # of the features, resolved as `predict` resolves it (bf16 on CPUs with native bf16, else fp32)

    def __post_init__(self) -> None:
        if self.batch_window_ms < 0:
            raise ConfigError(f"expected batch_window_ms >= 0, got {self.batch_window_ms} — 0 batches only requests already waiting")
        if self.threads < 0:
            raise ConfigError(f"expected threads >= 0 (0: the cores less one), got {self.threads}")
        for name in ("workers", "max_batch", "max_queue"):
            if getattr(self, name) < 1:
                raise ConfigError(f"expected {name} >= 1, got {getattr(self, name)}")


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

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


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
    """The run's model, ``workers`` replicas of it, and the batcher that shares their forward passes among requests."""

    def __init__(self, run: Run, config: ServeConfig) -> None:
        self.run = run
        self.config = config
        self.threshold = config.threshold if config.threshold is not None else run_threshold(run)
        self.runtime = pick_runtime(device="cpu", precision=config.precision)  # the replicas live on the CPU
        # fp32 on the CPU in eval mode, channels_last once here rather than on every pass; the caller's model stays as it is
        model = inference_copy(run.model).to(memory_format=torch.channels_last)
        try:
            self.layer: str | None = last_conv_layer(model)
        except Exception as err:  # a network without a spatial map: serve without Grad-CAM
            log.warning("no Grad-CAM layer found (%s); serving without overlays", err)
            self.layer = None
        self.replicas = [model] + [copy.deepcopy(model) for _ in range(config.workers - 1)]
        self.batcher = Batcher(self.replicas, self._answer, config.batch_window_ms / 1e3, config.max_batch, config.max_queue)

    def prepare(self, data: bytes, name: str) -> torch.Tensor:
        """An upload -> the (3, H, W) uint8 view the model sees, decoded as ``predict`` decodes a file (JPEGs at a
        reduced scale where the crop allows). Thread-safe: the service runs it off the event loop."""
        image = decode_upload(data, name, self.config, draft=self.run.model.preprocess.draft_size())
        return self.run.model.preprocess.to_uint8(image)

    async def answer(self, uploads: list[tuple[bytes, str]], k: int, with_cam: bool) -> list[dict[str, Any]]:
        """One request: its uploads ((bytes, name) each) decoded on worker threads, then ``infer``. Room in the
        queue is taken first, so an overloaded server refuses before decoding anything.

        Raises:
            ApiError: 503 with Retry-After when the queue is full or the server is shutting down; 4xx for a bad upload.
        """
        try:
            self.batcher.reserve(len(uploads))
        except (Overloaded, Closed) as err:
            raise _busy(err) from None
        try:
            loop = asyncio.get_running_loop()  # decoding off the event loop: it overlaps passes and other requests' I/O
            views = [await loop.run_in_executor(None, self.prepare, data, name) for data, name in uploads]
        except BaseException:
            self.batcher.release(len(uploads))
            raise
        return await self.infer(views, k, with_cam, reserved=True)

    async def infer(self, views: list[torch.Tensor], k: int, with_cam: bool, reserved: bool = False) -> list[dict[str, Any]]:
        """Answer rows for one request's (3, H, W) uint8 views, computed in a forward pass shared with concurrent
        requests (a Grad-CAM request has a pass of its own). ``reserved``: room taken by ``batcher.reserve``.

        Raises:
            ApiError: 503 with Retry-After when the queue is full or the server is shutting down.
        """
        job = Job(payload=(torch.stack(views), k, with_cam), size=len(views), alone=with_cam)
        try:
            future = self.batcher.submit(job, reserved=reserved)
        except (Overloaded, Closed) as err:
            raise _busy(err) from None
        try:
            return await asyncio.wrap_future(future)
        except Closed as err:
            raise _busy(err) from None

    def close(self) -> None:
        """Stop the batcher: queued requests get 503, passes under way finish (called at server shutdown)."""
        self.batcher.close()

    def _answer(self, model: torch.nn.Module, jobs: list[tuple[torch.Tensor, int, bool]]) -> list[list[dict[str, Any]]]:
        """Several requests' views in one forward pass, each request scored by ``run.prediction`` with its own k."""
        if len(jobs) == 1 and jobs[0][2]:
            return [self._infer(model, *jobs[0])]
        views = torch.cat([job[0] for job in jobs])  # (B, 3, H, W) uint8, as predict's files
        features = features_of_images(model, views, self.runtime)  # (B, D)
        # scored once at the largest k; a smaller k is a prefix of the same stable ranking
        _, answers = predict_features(self.run, features, max(job[1] for job in jobs), unsure_below=self.threshold)
        rows = [{**_without_path(a), "n_classes": len(model.classes), "gradcam": None} for a in answers]
        out, start = [], 0
        for part, k, _ in jobs:
            out.append([{**row, "top": row["top"][:k]} for row in rows[start : start + len(part)]])
            start += len(part)
        return out

    def _infer(self, model: torch.nn.Module, views: torch.Tensor, k: int, with_cam: bool) -> list[dict[str, Any]]:
        """One request on its own (Grad-CAM hooks the network, so it never shares a pass)."""
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


def _busy(err: Overloaded | Closed) -> ApiError:
    """The batcher's refusal as the service's 503: one sentence, and when to try again."""
    if isinstance(err, Overloaded):
        return ApiError(503, f"the server is busy (its queue is full) — retry in {err.retry_after} s", {"Retry-After": str(err.retry_after)})
    return ApiError(503, "the server is shutting down — retry in a few seconds", {"Retry-After": "5"})


def _without_path(answer: Prediction) -> dict[str, Any]:
    return {k: v for k, v in answer.to_dict().items() if k != "path"}


def page_html(run: Run | None = None) -> str:
    """The web page, titled with the question ``run`` answers."""
    import html

    task = run.record.task(run.classes) if run is not None else "Which class is it?"
    return (package_files(__package__) / "page.html").read_text(encoding="utf-8").replace("{{TASK}}", html.escape(task))

