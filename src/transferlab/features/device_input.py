"""The GPU input pipeline: JPEG files decoded in batches on the device, then resized and cropped there.

Reader threads run ahead of the device: each reads a file, looks at its header (Pillow, no pixels decoded) and
either keeps its bytes (pinned where CUDA is) for the device's batched decoder (``torchvision.io.decode_jpeg``
with a list, nvJPEG on CUDA) or, for what that decoder does not take (PNG, GIF, CMYK and progressive JPEGs,
files without an end marker, oversized or broken files), decodes it with the CPU path's own ``open_rgb``, so a
bad file is reported in the same words. A batch the device decoder refuses is retried image by image, and an
image it still refuses goes to the CPU decoder: one file never fails a batch. A preparing thread then decodes,
turns, resizes and crops each batch on a side CUDA stream (``device_geometry``), one batch ahead of the
consumer. On the CPU, the streams, pinning and non-blocking copies are no-ops: the same code runs in the tests.

Which path runs is the ``decoder`` setting: ``auto`` (the device pipeline when the model runs on CUDA and the
device decoder works there, else the CPU path with one log line saying why), ``cpu`` or ``gpu``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import queue
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ..data.decode import MAX_PIXELS, BadImageError, open_rgb, os_reason
from ..errors import ConfigError
from ..models.preprocess import Preprocess
from .device_geometry import draft_factor, eval_view, shrink, upright

log = logging.getLogger(__name__)

DECODERS = ("auto", "cpu", "gpu")
GPU_FIX = "run on a CUDA GPU with a CUDA build of torch and torchvision (pip install torch torchvision), or use --decoder cpu"
_choice: ContextVar[str] = ContextVar("transferlab_decoder", default="auto")

# A view turns a batch's upright (3, h, w) uint8 images (and the batch's index) into the network's (B, 3, H, W) input.
View = Callable[[list[torch.Tensor], int], torch.Tensor]


@contextlib.contextmanager
def using_decoder(decoder: str) -> Iterator[None]:
    """Within the block, extraction and fine-tuning that are not told a decoder use ``decoder`` (auto, cpu, gpu)."""
    check_decoder(decoder)
    token = _choice.set(decoder)
    try:
        yield
    finally:
        _choice.reset(token)


def check_decoder(decoder: str) -> None:
    if decoder not in DECODERS:
        raise ConfigError(f"expected decoder in {DECODERS}, got {decoder!r}")


def current_decoder() -> str:
    """The decoder setting in force here (``using_decoder``), ``auto`` by default."""
    return _choice.get()


def use_device_decoder(device: torch.device, decoder: str | None = None) -> bool:
    """Whether files for a model on ``device`` are decoded there (True) or on the CPU (False).

    Args:
        device: where the model runs.
        decoder: ``auto``, ``cpu`` or ``gpu`` (default: ``current_decoder()``).

    Raises:
        ConfigError: ``gpu`` where the device cannot decode (no CUDA, or torchvision without nvJPEG).
    """
    decoder = decoder or current_decoder()
    check_decoder(decoder)
    if decoder == "cpu":
        return False
    reason = unavailable_reason(torch.device(device))
    if reason is None:
        return True
    if decoder == "gpu":
        raise ConfigError(f"cannot decode images on the GPU: {reason}; {GPU_FIX}")
    _log_fallback(reason)
    return False


@functools.cache
def _log_fallback(reason: str) -> None:
    log.info("decoding images on the CPU: %s", reason)  # once per process and reason


def unavailable_reason(device: torch.device) -> str | None:
    """Why images cannot be decoded on ``device`` (one clause), or None when they can."""
    if device.type != "cuda":
        return f"the model runs on the {device.type.upper()}, not on a CUDA GPU"
    return _probe_cuda_decoder(device.index if device.index is not None else torch.cuda.current_device())


@functools.cache
def _probe_cuda_decoder(index: int) -> str | None:
    """Decode a tiny JPEG on CUDA device ``index`` once: builds without nvJPEG fail here, not mid-run."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, "JPEG")
    try:
        _decode([torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)], torch.device("cuda", index))
    except Exception as err:  # whatever the build lacks, the answer is the same: decode on the CPU
        return f"torchvision cannot decode JPEGs on the GPU here ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return None


def _decode(datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """torchvision's batched JPEG decoder (nvJPEG on CUDA): (3, h, w) uint8 RGB images on ``device``."""
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision 0.29 deprecates its decoders in favour of TorchCodec
        return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=device))


def device_header(data: bytes) -> tuple[int, int, int] | None:
    """(width, height, EXIF orientation) of a JPEG the device decoder can take (baseline, RGB or grey, whole,
    within ``MAX_PIXELS``), or None when the file should go to the CPU decoder instead."""
    body = data.rstrip(b"\x00")  # some writers pad after the end marker
    if not (data.startswith(b"\xff\xd8\xff") and body.endswith(b"\xff\xd9")):  # not a JPEG, or cut short
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:  # the header only
            plain = image.format == "JPEG" and image.mode in ("RGB", "L") and not image.info.get("progressive")
            if not plain or image.info.get("adobe_transform") == 0 or image.width * image.height > MAX_PIXELS:
                return None
            return image.width, image.height, int(image.getexif().get(0x0112, 1))  # what ImageOps.exif_transpose reads
    except Exception:  # whatever Pillow refuses, the CPU decoder refuses and reports in its own words
        return None


@dataclass
class _Read:
    """One file after its reader thread: bytes for the device, an image decoded on the CPU, or why it is bad."""

    data: torch.Tensor | None = None  # (n,) uint8, the file, for the device decoder
    orientation: int = 1
    factor: int = 1  # the CPU path decodes this JPEG at 1/factor scale (its draft): so is the device's copy shrunk
    image: torch.Tensor | None = None  # (3, h, w) uint8, upright, decoded by the CPU path
    reason: str | None = None


def _cpu_image(data: bytes, draft: tuple[int, int] | None) -> torch.Tensor:
    """The CPU path's decode (``open_rgb``: upright RGB, draft-scaled JPEGs) as a (3, h, w) uint8 tensor. Raises BadImageError."""
    import numpy as np

    image = open_rgb(data, draft=draft)
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def _read(path: Path, draft: tuple[int, int] | None, pin: bool) -> _Read:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return _Read(reason=os_reason(err, path))
    header = device_header(data)
    if header is None:
        try:
            image = _cpu_image(data, draft)
            return _Read(image=image.pin_memory() if pin else image)
        except BadImageError as err:
            return _Read(reason=err.reason)
    tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    width, height, orientation = header
    return _Read(data=tensor.pin_memory() if pin else tensor, orientation=orientation, factor=draft_factor(width, height, draft))


def decode_reads(reads: Sequence[_Read], device: torch.device, draft: tuple[int, int] | None) -> list[torch.Tensor | str]:
    """Upright (3, h, w) uint8 images on ``device`` (or the reason a file is bad), in order.

    The device decodes all it was given in one call; if it refuses the batch, image by image; what it
    still refuses is decoded by the CPU path.
    """
    todo = [i for i, r in enumerate(reads) if r.data is not None]
    decoded: dict[int, torch.Tensor | None] = {}
    if todo:
        try:
            decoded = dict(zip(todo, _decode([reads[i].data for i in todo], device)))  # type: ignore[misc]
        except RuntimeError:  # nvJPEG refuses the whole batch for one file: find it
            decoded = {i: _decode_one(reads[i].data, device) for i in todo}  # type: ignore[arg-type]
    out: list[torch.Tensor | str] = []
    for i, r in enumerate(reads):
        if r.reason is not None:
            out.append(r.reason)
        elif r.image is not None:
            out.append(r.image.to(device, non_blocking=True))
        elif (image := decoded.get(i)) is not None:
            out.append(upright(shrink(image, r.factor), r.orientation))
        else:
            out.append(_cpu_fallback(r, device, draft))
    return out


def _decode_one(data: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    try:
        return _decode([data], device)[0]
    except RuntimeError:
        return None


def _cpu_fallback(read: _Read, device: torch.device, draft: tuple[int, int] | None) -> torch.Tensor | str:
    try:
        return _cpu_image(bytes(read.data.numpy()), draft).to(device)  # type: ignore[union-attr]
    except BadImageError as err:
        return err.reason


class DeviceBatches:
    """Batches of network inputs prepared on ``device`` from image files, in the order of ``batches``.

    Iterating yields ``(positions, (B, 3, H, W) uint8 on device or None, {position: reason})`` per batch of
    positions into ``paths``, like the CPU decoder of ``extract_features``. Files are read ``ahead`` images in
    front of the batch being prepared, and batches are prepared one ahead of the consumer, on a side stream
    whose work the default stream waits for before using the batch.

    Args:
        paths: the files.
        batches: lists of positions into ``paths``, one per batch.
        view: (upright images, batch index) -> the network's input (``device_geometry.eval_view`` or a
            training augmentation).
        device: where decoding and resizing run.
        workers: reader threads.
        ahead: files read ahead of the batch being prepared.
        draft: the CPU decoder's JPEG draft size (``Preprocess.draft_size``), for the files it decodes.
    """

    def __init__(
        self, paths: Sequence[Path], batches: Sequence[Sequence[int]], view: View, device: torch.device, workers: int, ahead: int, draft: tuple[int, int] | None = None
    ) -> None:
        self.paths, self.batches, self.view, self.device, self.ahead, self.draft = paths, [list(b) for b in batches], view, torch.device(device), ahead, draft
        self.order = [i for b in self.batches for i in b]
        self.pool = ThreadPoolExecutor(workers)
        self.pending: deque[Future] = deque()
        self.submitted = 0
        self.cuda = self.device.type == "cuda"
        self._fill(ahead)

    def _fill(self, upto: int) -> None:
        while self.submitted < min(len(self.order), upto):
            self.pending.append(self.pool.submit(_read, self.paths[self.order[self.submitted]], self.draft, self.cuda))
            self.submitted += 1

    def __len__(self) -> int:
        return len(self.batches)

    def _prepared(self) -> Iterator[tuple[list[int], torch.Tensor | None, dict[int, str], torch.cuda.Event | None]]:
        stream = torch.cuda.Stream(self.device) if self.cuda else None
        done = 0
        for index, batch in enumerate(self.batches):
            self._fill(done + len(batch) + self.ahead)
            reads = [self.pending.popleft().result() for _ in batch]
            done += len(batch)
            with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                images = decode_reads(reads, self.device, self.draft)
                positions = [p for p, im in zip(batch, images) if not isinstance(im, str)]
                bad = {p: im for p, im in zip(batch, images) if isinstance(im, str)}
                x = self.view([im for im in images if not isinstance(im, str)], index) if positions else None
            event = None
            if stream is not None:
                event = torch.cuda.Event()
                event.record(stream)
                if x is not None:
                    x.record_stream(torch.cuda.default_stream(self.device))  # the consumer's stream holds it from here
            yield positions, x, bad, event

    def __iter__(self) -> Iterator[tuple[list[int], torch.Tensor | None, dict[int, str]]]:
        for positions, x, bad, event in _background(self._prepared(), depth=1):
            if event is not None:
                torch.cuda.default_stream(self.device).wait_event(event)  # work queued after this sees the batch ready
            yield positions, x, bad

    def __enter__(self) -> "DeviceBatches":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _background(items: Iterator, depth: int) -> Iterator:
    """Run ``items`` in a thread, ``depth`` items ahead of the consumer; its exceptions are raised here."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            out.put(end)
        except BaseException as err:  # handed to the consumer, raised in its thread
            out.put(err)

    thread = threading.Thread(target=produce, daemon=True, name="transferlab-device-input")
    thread.start()
    try:
        while (item := out.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def eval_batches(paths: Sequence[Path], preprocess: Preprocess, batch_size: int, workers: int, ahead: int, device: torch.device) -> DeviceBatches:
    """``DeviceBatches`` of the evaluation view (``Preprocess.to_uint8``'s pixels) of ``paths``, in order, ``batch_size`` at a time."""
    batches = [range(start, min(start + batch_size, len(paths))) for start in range(0, len(paths), batch_size)]
    return DeviceBatches(paths, batches, lambda images, _: eval_view(preprocess, images), device, workers, ahead, preprocess.draft_size())  # type: ignore[arg-type]
