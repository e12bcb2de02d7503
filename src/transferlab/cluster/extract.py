"""Filling the feature cache over Ray Data, so that ``train``, ``compare`` or ``audit`` on any machine reuse it.

The replicas write the cache shards themselves (atomic, one shard per batch, as ``extract_features``
does), so the cache folder must be one the whole cluster shares. The key is the one a local run makes:
the backbone's fingerprint, architecture, preprocessing and the precision resolved on this machine.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._types import Progress
from ..features.cache import FeatureCache, default_cache_dir
from ..features.extract import cache_key
from ..features.runtime import pick_runtime
from ..models.classifier import ImageClassifier
from .session import RayConfig, Replica, batch_rows, block_count, connected, data_context, decode_args, decode_batch, file_items, pool_args


@dataclass
class RayExtraction:
    """What ``ray_extract`` did: every file is either computed, already cached, or failed."""

    cache_dir: Path  # the cache's folder for this backbone configuration
    computed: int = 0  # images run through the network by the replicas
    cached: int = 0  # images whose features were already in the cache
    failed: dict[str, str] = field(default_factory=dict)  # file -> reason
    seconds: float = 0.0


class Extractor(Replica):
    """A Ray actor: one backbone replica writing the features of decoded batches into the shared cache."""

    def __init__(self, model: ImageClassifier, cache_root: str, key: dict[str, str], precision: str, batch_size: int | None, n_images: int) -> None:
        super().__init__(model, precision, batch_size, n_images)
        self.cache = FeatureCache(cache_root, key)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        todo = [i for i, e in enumerate(batch["error"]) if not e]
        if todo:
            self.cache.put([str(batch["hash"][i]) for i in todo], self.features(batch["image"][todo]))
        status = ["computed" if not e else str(e) for e in batch["error"]]
        return {"path": np.asarray(batch["path"], dtype=object), "status": np.array(status, dtype=object)}


def ray_extract(
    model: ImageClassifier,
    paths: Sequence[Path | str],
    *,
    fingerprint: str | None = None,
    cache_dir: Path | str | None = None,
    config: RayConfig | None = None,
    progress: Progress | None = None,
) -> RayExtraction:
    """Put the pooled features of ``paths`` into the feature cache, computed on Ray; files already cached are skipped.

    Args:
        model: the network whose backbone features are cached (a backbone from ``create_backbone``).
        paths: image files (a dataset's ``[s.path for s in ds.samples]``).
        fingerprint: the backbone's fingerprint when already known (computed otherwise).
        cache_dir: the cache root, on a filesystem every worker reaches [default: $TRANSFERLAB_CACHE or ~/.cache/transferlab].
        config: cluster address, replicas, GPUs per replica, batch size, precision ("auto" is resolved here,
            on this machine, so that the key is the one a ``train`` here looks up).
        progress: called with ("features", done, total) as files complete.
    """
    config = config or RayConfig()
    config.check()
    started = time.perf_counter()
    runtime = pick_runtime(precision=config.precision)
    key = cache_key(model, runtime, fingerprint or model.backbone_fingerprint())
    root = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser().absolute()
    cache = FeatureCache(root, key)
    known = frozenset(cache.hashes())
    files = [str(p) for p in paths]
    result = RayExtraction(cache.dir)
    with connected(config.address) as ray:
        from ray.data import DataContext

        with DataContext.current(data_context()):
            ds = ray.data.from_items(file_items(files), override_num_blocks=block_count(len(files), config))
            ds = ds.map_batches(decode_batch, fn_kwargs={"preprocess": model.preprocess, "with_hash": True, "known": known}, batch_size=batch_rows(config), **decode_args(ray))
            ds = ds.map_batches(
                Extractor, fn_constructor_args=(model, str(root), key, runtime.precision, config.batch_size, len(files)),
                batch_size=batch_rows(config), batch_format="numpy", **pool_args(config),
            )
            done = 0
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for path, status in zip(batch["path"], batch["status"]):
                    if status == "computed":
                        result.computed += 1
                    elif status == "cached":
                        result.cached += 1
                    else:
                        result.failed[str(path)] = str(status)
                done += len(batch["path"])
                if progress:
                    progress("features", done, len(files))
    result.seconds = time.perf_counter() - started
    return result
