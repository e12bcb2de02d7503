"""Fast pooled-feature extraction from image files, filling and reusing the on-disk cache.

Files are hashed first; only content the cache lacks is decoded and run through the network. Decoding
(Pillow releases the GIL) runs in a thread pool a few batches ahead of the model. On CPU the model runs
as one single-threaded stream per core, each on its own batch: EfficientNet's depthwise convolutions
scale poorly across threads, so this gets ~40% more images/s than one stream using every core.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .._types import CountProgress as Progress
from ..data import BadImageError, open_rgb
from ..data.decode import os_reason
from ..data.file_index import FileIndex, file_facts
from ..models.classifier import ImageClassifier
from ..models.preprocess import Preprocess
from ..models.state import preserved
from .cache import FeatureCache
from .device_input import eval_batches, use_device_decoder
from .runtime import Runtime, cpu_count, inference, optimize_for_inference, pick_runtime, single_threaded_ops
from .views import load_view, view_cache


@dataclass
class Extraction:
    """Features for the readable files among ``paths``, in their order."""

    features: torch.Tensor  # (N_ok, D) float32
    ok: list[int]  # indices into the requested paths that have a row in ``features``
    failed: dict[Path, str] = field(default_factory=dict)  # unreadable/undecodable file -> reason
    computed: int = 0  # images run through the network (cache misses)
    seconds: float = 0.0
    hashes: list[str | None] = field(default_factory=list)  # content hash of each requested path (None: unreadable)


def cache_key(model: ImageClassifier, runtime: Runtime, fingerprint: str | None = None) -> dict[str, str]:
    """Everything that changes the cached numbers: weights, architecture (a combination's names its members and
    feature mode), preprocessing, precision."""
    return {
        "weights": fingerprint or model.backbone_fingerprint(),
        "arch": type(model.net).__name__ + ":" + str(model.net.default_cfg.get("architecture", "")),
        "preprocess": model.preprocess.key(),
        "precision": runtime.precision,
        "version": "features-v1",
    }


def load_image(source: Path | bytes, preprocess: Preprocess) -> torch.Tensor:
    """Read (a path) or take (its bytes), decode and resize one file to the network's uint8 input. Raises BadImageError, OSError."""
    image = open_rgb(source if isinstance(source, bytes) else Path(source).read_bytes(), draft=preprocess.draft_size())
    return preprocess.to_uint8(image)


def _hash_files(paths: Sequence[Path], workers: int, cache: FeatureCache | None) -> tuple[list[str | None], dict[Path, str]]:
    """Content hash of each path (None: unreadable, with the reason in the dict); with a cache, the file index
    beside it (``data.file_index``) spares re-reading files unchanged since they were last hashed."""
    facts = file_facts(paths, FileIndex(cache.dir.parents[1]) if cache is not None else None, workers=workers)
    return [f.digest for f in facts], {p: f.problem for p, f in zip(paths, facts) if f.digest is None}


class _Decoder:
    """Decodes files in a thread pool, ``ahead`` images in front of the batch being consumed.

    Submission starts at construction, so decoding overlaps whatever the caller does next (tracing the
    network, typically).
    """

    def __init__(self, paths: Sequence[Path], preprocess: Preprocess, batch_size: int, workers: int, ahead: int, view: str | None = None) -> None:
        self.paths, self.preprocess, self.batch_size, self.ahead, self.view = paths, preprocess, batch_size, ahead, view
        self.pool = ThreadPoolExecutor(workers)
        self.pending: deque[tuple[int, Future]] = deque()
        self.submitted = 0
        self._fill(ahead)

    def _load(self, path: Path) -> torch.Tensor | str:
        try:
            return load_image(path, self.preprocess) if self.view is None else load_view(path, self.preprocess, self.view)
        except BadImageError as err:
            return err.reason
        except OSError as err:
            return os_reason(err, path)

    def _fill(self, upto: int) -> None:
        while self.submitted < min(len(self.paths), upto):
            self.pending.append((self.submitted, self.pool.submit(self._load, self.paths[self.submitted])))
            self.submitted += 1

    def __iter__(self) -> Iterator[tuple[list[int], torch.Tensor | None, dict[int, str]]]:
        """Yield (positions, uint8 batch or None, {position: reason}) in order."""
        for start in range(0, len(self.paths), self.batch_size):
            self._fill(start + self.batch_size + self.ahead)
            positions, images, bad = [], [], {}
            for _ in range(min(self.batch_size, len(self.paths) - start)):
                pos, fut = self.pending.popleft()
                result = fut.result()
                if isinstance(result, str):
                    bad[pos] = result
                else:
                    positions.append(pos)
                    images.append(result)
            yield positions, (torch.stack(images) if images else None), bad

    def __enter__(self) -> "_Decoder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _compute(
    model: ImageClassifier, paths: Sequence[Path], runtime: Runtime, batch_size: int, workers: int, on_device: bool = False, view: str | None = None,
) -> Iterator[tuple[list[int], torch.Tensor | None, dict[int, str]]]:
    """Yield (positions, (B, D) float32 features or None, {position: reason}) per batch, in order.

    On CPU, one single-threaded model stream per core, each on its own batch, while ``workers``
    threads decode ahead; ``on_device``: files are decoded and resized on the model's device (``device_input``);
    ``view``: an extra view of each file (``features.views``), decoded on the CPU.
    """
    streams = cpu_count() if runtime.device.type == "cpu" else 1
    ahead = max(256, 2 * batch_size * streams)
    decoding = eval_batches(paths, model.preprocess, batch_size, workers, ahead, runtime.device) if on_device else _Decoder(paths, model.preprocess, batch_size, workers, ahead, view)
    with single_threaded_ops(streams > 1), decoding as decoder, ThreadPoolExecutor(streams) as pool:
        example = torch.zeros(batch_size, 3, *model.preprocess.input_size, dtype=torch.uint8)
        fast = optimize_for_inference(model.feature_extractor(), runtime, example, len(paths))  # while the first files decode
        # (it moves the caller's network to the device in channels_last: ``extract_features`` moves it back)

        def forward(batch: torch.Tensor) -> torch.Tensor:
            with inference(runtime):  # autocast and inference mode are per thread
                return fast(batch.to(runtime.device).contiguous(memory_format=torch.channels_last)).float().cpu()

        in_flight: deque[tuple[list[int], Future | None, dict[int, str]]] = deque()

        def oldest() -> tuple[list[int], torch.Tensor | None, dict[int, str]]:
            positions, fut, bad = in_flight.popleft()
            return positions, (fut.result() if fut is not None else None), bad

        for positions, batch, bad in decoder:
            in_flight.append((positions, pool.submit(forward, batch) if batch is not None else None, bad))
            if len(in_flight) > streams:
                yield oldest()
        while in_flight:
            yield oldest()


def extract_features(
    model: ImageClassifier,
    paths: Sequence[Path | str],
    *,
    cache: FeatureCache | None = None,
    runtime: Runtime | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    decoder: str | None = None,
    view: str | None = None,
    dtype: torch.dtype | None = None,
) -> Extraction:
    """Pooled features of ``paths`` through ``model``'s backbone, using and filling ``cache``.

    Args:
        model: the classifier whose ``features`` are wanted (its head is not used).
        paths: image files; unreadable or undecodable ones are reported in ``failed``, never raised.
        cache: where features are looked up and stored; ``None`` computes everything.
        runtime: device and precision (default: the fastest this machine has).
        batch_size: images per forward pass (default 16 per CPU stream, 64 on GPU).
        workers: decoding threads (default: the cores available).
        progress: called with (done, total) as images complete.
        decoder: ``auto`` (decode and resize on the GPU when the model runs on one), ``cpu`` or ``gpu``
            (default: ``device_input.current_decoder()``, set by ``using_decoder``).
        view: features of this extra view of each file (``features.views.VIEWS``: mirrored, shifted crops)
            instead of the plain one, cached beside ``cache`` under their own key; always decoded on the CPU.
        dtype: the returned features' type (default float32); float16 halves a large collection's memory,
            each cache shard converted as it is read (the cache itself keeps float32).
    """
    started = time.perf_counter()
    paths = [Path(p) for p in paths]
    runtime = runtime or pick_runtime()
    workers = workers or cpu_count()
    batch_size = batch_size or (16 if runtime.device.type == "cpu" else 64)
    on_device = use_device_decoder(runtime.device, decoder) and view is None  # before any work: ``gpu`` without one is refused here
    cache = view_cache(cache, view) if cache is not None else None
    hashes, failed = _hash_files(paths, workers, cache)
    found = cache.get((h for h in hashes if h), dtype) if cache is not None else {}
    todo_hashes = list(dict.fromkeys(h for h in hashes if h and h not in found))  # identical files computed once
    first_path = {h: p for p, h in zip(paths, hashes) if h}
    todo = [first_path[h] for h in todo_hashes]
    done = len(paths) - len(todo)
    if progress:
        progress(done, len(paths))
    bad_hashes: dict[str, str] = {}
    with preserved(model):  # the caller's model keeps its device, layout and mode
        for positions, feats, bad in _compute(model, todo, runtime, batch_size, workers, on_device, view) if todo else ():
            bad_hashes.update({todo_hashes[i]: reason for i, reason in bad.items()})
            if feats is not None:
                batch_hashes = [todo_hashes[i] for i in positions]
                found.update(zip(batch_hashes, feats if dtype is None else feats.to(dtype)))
                if cache is not None:
                    cache.put(batch_hashes, feats)
            done += len(positions) + len(bad)
            if progress:
                progress(done, len(paths))
    ok, rows = [], []
    for i, (path, h) in enumerate(zip(paths, hashes)):
        if h is None:
            continue
        if h in bad_hashes:
            failed[path] = bad_hashes[h]
        else:
            ok.append(i)
            rows.append(found[h])
    features = torch.stack(rows) if rows else torch.empty(0, model.feature_dim, dtype=dtype or torch.float32)
    return Extraction(features, ok, failed, computed=len(todo) - len(bad_hashes), seconds=time.perf_counter() - started, hashes=hashes)


def features_of_images(model: ImageClassifier, images: torch.Tensor, runtime: Runtime | None = None) -> torch.Tensor:
    """Pooled features of images already at the model's input size, on the device and at the precision
    ``extract_features`` uses for files (no cache, no decoding); the caller's model stays as it was.

    Shape:
        images (B, 3, H, W) uint8, or float in [0, 1]; returns (B, D) float32 on the CPU.
    """
    runtime = runtime or pick_runtime()
    with preserved(model):
        module = model.feature_extractor().eval().to(runtime.device, memory_format=torch.channels_last)
        with inference(runtime):
            return module(images.to(runtime.device).contiguous(memory_format=torch.channels_last)).float().cpu()
