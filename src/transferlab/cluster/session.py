"""Connecting to Ray, the pool's settings, and the decoding stage both Ray jobs share.

The decoding stage is ``features.extract.load_image`` (the exact path ``predict`` and ``train`` use) run
in Ray tasks; a file that cannot be read or decoded becomes a row with its reason, never a failed task.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._io import display_path
from ..data.decode import BadImageError, is_ignored, is_image_name, os_reason
from ..errors import ConfigError, DataError
from ..models.classifier import ImageClassifier
from ..models.preprocess import Preprocess


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide a Ray job runs; the CLI's ``--address``, ``--workers``, ``--gpus-per-worker``."""

    address: str | None = None  # None: a local Ray instance on this machine; "auto" or "HOST:6379": a cluster
    workers: int = 1  # model replicas (Ray actors), each holding one copy of the network
    gpus_per_worker: float = 0.0  # GPUs each replica reserves (0: CPU; 0.5: two replicas share a GPU)
    batch_size: int | None = None  # images per forward pass [16 on CPU, 64 on GPU, as `predict`]
    precision: str = "auto"  # auto | bf16 | fp16 | fp32, resolved on each worker as `predict` does

    def check(self) -> None:
        """Raise ``ConfigError`` for values no pool can have."""
        if self.workers < 1:
            raise ConfigError(f"expected --workers of at least 1, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise ConfigError(f"expected --gpus-per-worker of 0 or more, got {self.gpus_per_worker:g}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"expected --batch-size of at least 1, got {self.batch_size}")


def require_ray() -> Any:
    """The ``ray`` module, or a one-line ``ConfigError`` naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (ray without its data extra lacks pyarrow)
    except ImportError as err:
        raise ConfigError(f"--ray needs Ray Data ({err.name or 'ray'} is not installed) — pip install 'ray[data]' (or, in a clone, pip install -e '.[ray]')") from err
    return ray


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Ray, initialised for the block: an existing connection is used as is; one started here is shut down after."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    _check_reachable(address)
    ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def _check_reachable(address: str | None) -> None:
    """A one-line ``ConfigError`` when nothing listens at ``HOST:PORT`` (``ray.init`` would retry for minutes)."""
    if address is None or address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot reach a Ray cluster at {address!r} ({err}) — start one there with `ray start --head`, or leave out --address for a local instance") from err


def data_context(preserve_order: bool = True) -> Any:
    """A copy of Ray Data's current context that keeps input order (unless told not to) and draws no progress bars of its own."""
    from ray.data import DataContext

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # copying reads Ray's own deprecated settings
        ctx = DataContext.get_current().copy()
    ctx.execution_options.preserve_order = preserve_order  # rows come out in the order of the files given
    ctx.enable_progress_bars = False  # the caller's progress callback reports instead
    return ctx


def pool_args(config: RayConfig) -> dict[str, Any]:
    """``map_batches`` arguments for the model's actor pool of ``config.workers`` replicas.

    Ray Data starts pool actors with ``max_restarts=-1`` and ``max_task_retries=-1``: a killed replica is
    replaced and the batch it held runs again, and a batch's rows reach the output only once it completes,
    so no row is lost or doubled (tests/cluster pins this).
    """
    from ray.data import ActorPoolStrategy

    return {"compute": ActorPoolStrategy(size=config.workers), "num_cpus": 1, "num_gpus": config.gpus_per_worker}


def decode_args(ray: Any) -> dict[str, Any]:
    """``map_batches`` arguments for decoding: at most one task per cluster CPU.

    Tasks reserve no logical CPU so that decoding still runs when the replicas hold every CPU (a laptop,
    a 2-core CI machine); the pool size keeps them to the cluster's cores.
    """
    from ray.data import TaskPoolStrategy

    return {"compute": TaskPoolStrategy(size=max(1, int(ray.cluster_resources().get("CPU", 1)))), "num_cpus": 0}


def batch_rows(config: RayConfig) -> int:
    """Images per batch handed to a replica: ``config.batch_size``, else 16 on CPU and 64 on GPU (as ``predict``)."""
    return config.batch_size or (64 if config.gpus_per_worker else 16)


def block_count(n: int, config: RayConfig) -> int:
    """Ray Data blocks for ``n`` files: about four batches each, and at least two per replica so each gets work."""
    return max(1, min(n, max(2 * config.workers, -(-n // (4 * batch_rows(config))))))


# -- sources ---------------------------------------------------------------------------------------
def _is_uri(text: str) -> bool:
    return "://" in text


def list_sources(sources: Sequence[Path | str]) -> list[str]:
    """Image files as given, folders expanded (sorted, hidden ones left out); ``scheme://`` URIs listed with pyarrow.

    Raises:
        DataError: a path does not exist, or a folder holds no images.
    """
    from ..data.files import expand_image_paths

    files: list[str] = []
    for source in map(str, sources):
        if not _is_uri(source):
            files.extend(os.fsdecode(p) for p in expand_image_paths([source]))
            continue
        from pyarrow import fs as pafs

        filesystem, root = pafs.FileSystem.from_uri(source)
        scheme = source.split("://", 1)[0]
        info = filesystem.get_file_info(root)
        if info.type == pafs.FileType.File:
            files.append(source)
            continue
        if info.type != pafs.FileType.Directory:
            raise DataError(f"{source!r} does not exist — check the URI")
        found = sorted(
            f.path for f in filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
            if f.type == pafs.FileType.File and is_image_name(Path(f.path))
            and not any(is_ignored(part) for part in Path(f.path).relative_to(root).parts)
        )
        if not found:
            raise DataError(f"no image files under {source!r}")
        files.extend(f"{scheme}://{p}" for p in found)
    return files


@functools.lru_cache(maxsize=16)
def _filesystem(scheme: str, netloc: str) -> tuple[Any, str]:
    """One pyarrow filesystem per bucket or host (an object store's client is costly to make), and its root path."""
    from pyarrow import fs as pafs

    return pafs.FileSystem.from_uri(f"{scheme}://{netloc}/")


def read_bytes(source: str) -> bytes:
    """A file's bytes, from a local path or a URI any pyarrow filesystem reaches (s3://, gs://, hdfs://, file://)."""
    if not _is_uri(source):
        return Path(source).read_bytes()
    scheme, rest = source.split("://", 1)
    netloc, _, path = rest.partition("/")  # no URL unquoting: the names are the store's own, as listed
    filesystem, root = _filesystem(scheme, netloc)
    with filesystem.open_input_file(root.rstrip("/") + "/" + path) as f:
        return f.read()


def file_items(files: Sequence[str]) -> list[dict[str, Any]]:
    """Ray Data rows for ``files``: the name to show (``path``, valid UTF-8) and the one to open (``file``, raw bytes)."""
    return [{"path": display_path(f), "file": os.fsencode(f)} for f in files]


def read_file(path: str) -> tuple[bytes | None, str | None]:
    """A file's bytes, or None and the reason it cannot be read (the words ``predict`` uses)."""
    try:
        return read_bytes(path), None
    except OSError as err:
        return None, os_reason(err, None if _is_uri(path) else Path(path))


def decode(data: bytes, preprocess: Preprocess) -> tuple[np.ndarray | None, str | None]:
    """A file's bytes as the uint8 model input ``predict`` makes (3, H, W), or None and the reason."""
    from ..features.extract import load_image

    try:
        return load_image(data, preprocess).numpy(), None
    except BadImageError as err:
        return None, err.reason
    except OSError as err:
        return None, os_reason(err, None)


def decode_batch(batch: dict[str, np.ndarray], preprocess: Preprocess, with_hash: bool = False, known: frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
    """Ray Data stage: file names -> uint8 model inputs as ``predict`` makes them, with a reason for each bad file.

    Shape:
        batch["file"] (B,) bytes, batch["path"] (B,) str (see ``file_items``); returns "path", "image" (B, 3, H, W) uint8 (zeros where "error" is set),
        "error" (B,) str ("" when decoded, "cached" for a hash in ``known``),
        and with ``with_hash`` "hash" (B,) content hash or None.
    """
    from ..features.cache import content_hash

    paths = [os.fsdecode(bytes(f)) for f in batch["file"]]
    images = np.zeros((len(paths), 3, *preprocess.input_size), dtype=np.uint8)
    errors = [""] * len(paths)  # "": decoded (Ray Data turns None in object columns into NaN)
    hashes: list[str | None] = [None] * len(paths)
    for i, path in enumerate(paths):
        data, reason = read_file(path)
        if data is not None:
            hashes[i] = content_hash(data) if with_hash else None
            if hashes[i] in known:  # already in the feature cache: nothing to decode or compute
                errors[i] = "cached"
                continue
            image, reason = decode(data, preprocess)
            if image is not None:
                images[i] = image
        errors[i] = reason or ""
    out = {"path": np.asarray(batch["path"], dtype=object), "image": images, "error": np.array(errors, dtype=object)}
    if with_hash:
        out["hash"] = np.array(hashes, dtype=object)
    return out


class Replica:
    """What each model replica (a Ray actor) holds: the runtime and the feature extractor, fast for ``n_images``."""

    def __init__(self, model: ImageClassifier, precision: str, batch_size: int | None, n_images: int) -> None:
        import torch

        from ..features.runtime import optimize_for_inference, pick_runtime

        self.runtime = pick_runtime(precision=precision)
        self.batch_size = batch_size or (16 if self.runtime.device.type == "cpu" else 64)
        example = torch.zeros(self.batch_size, 3, *model.preprocess.input_size, dtype=torch.uint8)
        self.forward = optimize_for_inference(model.feature_extractor(), self.runtime, example, n_images)

    def features(self, images: np.ndarray) -> Any:
        """Pooled features of decoded images, ``batch_size`` at a time.

        Shape:
            images (N, 3, H, W) uint8; returns (N, D) float32 torch tensor on the CPU.
        """
        import torch

        from ..features.runtime import inference

        out = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start:start + self.batch_size]))  # (B, 3, H, W) uint8
            with inference(self.runtime):
                out.append(self.forward(batch.to(self.runtime.device).contiguous(memory_format=torch.channels_last)).float().cpu())
        return torch.cat(out)
