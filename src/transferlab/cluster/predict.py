"""``predict`` over Ray Data: blocks of files -> decoding tasks -> a pool of model replicas -> one Parquet part per block.

Each row holds the path, ``label`` (the answer: None for "none of these"), the top-k labels with their
probabilities, the in-distribution score where the run has one, and ``error`` (the reason) for a file that
could not be read or decoded. The numbers are ``Run.predict``'s: the same decoding
(``features.extract.load_image``), the same feature cache (content hash + ``features.extract.cache_key``,
precision resolved where the job is started), the same feature extractor and runtime (``features.runtime``),
and the same ``Prediction`` from the pooled features (``run.prediction.predict_features``). The replicas
write the parts themselves (``cluster.dataset``); the driver sees a few numbers per block, and a rerun
of a job that died computes only the blocks whose part is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import display_path
from .._types import Progress
from ..features.cache import FeatureCache, content_hash, default_cache_dir
from ..features.extract import cache_key
from ..features.runtime import pick_runtime
from ..models.preprocess import Preprocess
from ..run.prediction import Prediction, predict_features, unsure_setting
from ..run.run import Run
from .dataset import PART_SIZE, Job, Part, PartFolder, plan_parts, write_part
from .session import RayConfig, Replica, connected, data_context, decode, decode_args, list_sources, pool_args, read_file


@dataclass
class RayPrediction:
    """What ``ray_predict`` wrote: a folder of Parquet parts holding one row per input file, in their order."""

    path: Path  # the folder (a Parquet dataset with its _manifest.json)
    rows: int
    failed: dict[str, str] = field(default_factory=dict)  # file -> reason
    seconds: float = 0.0
    workers: int = 1
    parts: int = 0  # parts of the whole job
    parts_skipped: int = 0  # parts found complete (an earlier run of the same job wrote them)
    computed: int = 0  # images run through the network by this run
    cached: int = 0  # images whose features this run took from the feature cache


def has_in_distribution(run: Run) -> bool:
    """True when the run scores how typical an image is of its training data (a calibrated run with a threshold)."""
    confidence = getattr(run, "confidence", None)
    return bool(confidence is not None and confidence.rejects)


def row_schema(k: int, with_score: bool) -> Any:
    """The output's columns: path, label, label_1, prob_1 ... label_k, prob_k, [in_distribution], error."""
    import pyarrow as pa

    fields = [pa.field("path", pa.string()), pa.field("label", pa.string())]
    for rank in range(1, k + 1):
        fields += [pa.field(f"label_{rank}", pa.string()), pa.field(f"prob_{rank}", pa.float64())]
    if with_score:
        fields.append(pa.field("in_distribution", pa.float64()))
    return pa.schema([*fields, pa.field("error", pa.string())])


def prediction_rows(paths: Sequence[str], errors: Sequence[str | None], answers: Sequence[Prediction], k: int, with_score: bool) -> Any:
    """One pyarrow row per file: ``answers`` for the readable ones (in order), the reason for the rest.

    ``label`` is the answer (None: "none of these"); ``in_distribution`` the in-distribution score.
    """
    import pyarrow as pa

    ok = [i for i, e in enumerate(errors) if e is None]
    by_file: dict[int, Prediction] = dict(zip(ok, answers))
    columns: dict[str, list[Any]] = {"path": list(paths), "label": [by_file[i].label if i in by_file else None for i in range(len(paths))]}
    for rank in range(k):
        ranked = [by_file[i].top[rank] if i in by_file and rank < len(by_file[i].top) else None for i in range(len(paths))]
        columns[f"label_{rank + 1}"] = [t.label if t else None for t in ranked]
        columns[f"prob_{rank + 1}"] = [t.prob if t else None for t in ranked]
    if with_score:
        columns["in_distribution"] = [by_file[i].score if i in by_file else None for i in range(len(paths))]
    columns["error"] = list(errors)
    return pa.Table.from_pydict(columns, schema=row_schema(k, with_score))


def model_digest(run: Run) -> str:
    """A digest of what turns pooled features into answers: backbone fingerprint, classes, head, confidence."""
    digest = hashlib.sha256()
    settings = [run.record.backbone.fingerprint or run.model.backbone_fingerprint(), list(run.classes), run.record.confidence, unsure_setting(run)]
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for tensor in (run.model.head.weight, run.model.head.bias):
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


@dataclass
class DecodedPart:
    """A block after the decoding stage: what a replica needs to answer for each of its files."""

    index: int
    name: str  # the part file to write
    paths: list[str]  # the names shown, as listed
    errors: list[str | None]  # why a file cannot be read or decoded (None: it gets an answer)
    hashes: list[str | None]  # content hashes (None: unreadable)
    cached: dict[int, np.ndarray] = field(default_factory=dict)  # position -> pooled features from the cache
    todo: list[int] = field(default_factory=list)  # positions decoded into ``images``
    images: np.ndarray | None = None  # (len(todo), 3, H, W) uint8


def read_part(row: dict[str, Any], preprocess: Preprocess, cache_root: str | None, key: dict[str, str]) -> dict[str, Any]:
    """Ray Data stage: a block's files read and hashed; features the cache holds are taken, the rest decoded."""
    files = [os.fsdecode(bytes(f)) for f in row["files"]]
    read = [read_file(f) for f in files]
    hashes = [content_hash(data) if data is not None else None for data, _ in read]
    found = FeatureCache(cache_root, key).get(h for h in hashes if h) if cache_root else {}
    part = DecodedPart(int(row["index"]), str(row["name"]), [display_path(f) for f in files], [reason for _, reason in read], hashes)
    images = []
    for i, (data, _) in enumerate(read):
        if data is None:
            continue
        if hashes[i] in found:  # nothing to decode or compute
            part.cached[i] = found[hashes[i]].numpy().copy()  # a copy: not the whole shard it is a view of
            continue
        image, part.errors[i] = decode(data, preprocess)
        if image is not None:
            part.todo.append(i)
            images.append(image)
    part.images = np.stack(images) if images else np.zeros((0, 3, *preprocess.input_size), dtype=np.uint8)  # (T, 3, H, W)
    return {"index": part.index, "payload": pickle.dumps(part, protocol=5)}


class PartPredictor(Replica):
    """A Ray actor: one model replica turning a decoded block into its Parquet part, filling the feature cache."""

    def __init__(self, run: Run, k: int, precision: str, batch_size: int | None, n_images: int, out: str, cache_root: str | None, key: dict[str, str]) -> None:
        super().__init__(run.model, precision, batch_size, n_images)
        self.run, self.k, self.out = run, k, Path(out)
        self.with_score = has_in_distribution(run)
        self.cache = FeatureCache(cache_root, key) if cache_root else None

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        part: DecodedPart = pickle.loads(row["payload"])
        features = {i: torch.from_numpy(f) for i, f in part.cached.items()}
        if part.todo:
            computed = self.features(part.images)  # (T, D)
            if self.cache is not None:
                self.cache.put([str(part.hashes[i]) for i in part.todo], computed)
            features.update(zip(part.todo, computed))
        ok = [i for i, e in enumerate(part.errors) if e is None]
        answers = predict_features(self.run, torch.stack([features[i] for i in ok]), self.k)[1] if ok else []
        write_part(self.out / part.name, prediction_rows(part.paths, part.errors, answers, self.k, self.with_score))
        failed = {part.paths[i]: e for i, e in enumerate(part.errors) if e is not None}
        return {"index": part.index, "rows": len(part.paths), "computed": len(part.todo), "cached": len(part.cached), "failed": json.dumps(failed)}


def cache_root(cache_dir: Path | str | None, address: str | None) -> str | None:
    """Where the replicas read and fill the feature cache: ``cache_dir`` (on a cluster, a folder every node
    reaches), else on a local Ray instance ``predict``'s default, else (a cluster) no cache."""
    if cache_dir is not None:
        return str(Path(cache_dir).expanduser().absolute())
    return str(default_cache_dir().expanduser().absolute()) if address is None else None


def ray_predict(
    run: Run,
    sources: Sequence[Path | str],
    out: Path | str,
    k: int = 5,
    *,
    config: RayConfig | None = None,
    cache_dir: Path | str | None = None,
    part_size: int = PART_SIZE,
    progress: Progress | None = None,
) -> RayPrediction:
    """Top-k predictions for every file under ``sources``, computed on Ray, written by the replicas as a Parquet dataset in ``out``.

    Args:
        run: the trained run (or ``from_backbone``); it travels to the workers in Ray's object store.
        sources: image files, folders, or URIs a pyarrow filesystem reaches (``s3://bucket/photos``).
        out: the folder to write, on a filesystem every worker reaches: one part per ``part_size`` files and
            ``_manifest.json``; rows in the order the files are listed. Parts an earlier run of the same job
            wrote are kept, not computed again.
        k: labels per file.
        config: cluster address, replicas, GPUs per replica, batch size, precision ("auto" is resolved here,
            so that the feature cache key is the one a ``predict`` here uses).
        cache_dir: the feature cache the workers read and fill [default: on a local Ray instance, ``predict``'s
            ($TRANSFERLAB_CACHE or ~/.cache/transferlab); on a cluster, none unless given: it must be shared].
        part_size: files per part (a rerun resumes only with the same value).
        progress: called with ("predict", done, total) as parts complete.

    Raises:
        ConfigError: ``out`` is a file, another job's folder, or a setting is impossible, or Ray is missing.
        DataError: a source does not exist or holds no images.
    """
    config = config or RayConfig()
    config.check()
    started = time.perf_counter()
    files = list_sources(sources)
    k = max(1, min(k, len(run.classes)))
    runtime = pick_runtime(precision=config.precision)
    parts = plan_parts(files, part_size)
    job = Job.of([display_path(f) for f in files], part_size, k, row_schema(k, has_in_distribution(run)).names, model_digest(run), runtime.precision)
    folder = PartFolder(out, job)
    result = RayPrediction(folder.path, 0, workers=config.workers, parts=len(parts))
    todo = []
    for part in parts:
        done = folder.done(part)
        if done is None:
            todo.append(part)
        else:
            result.parts_skipped += 1
            result.rows += done[0]
            result.failed.update(done[1])
    folder.write_manifest(parts)
    if progress:
        progress("predict", result.rows, len(files))
    if todo:
        key = cache_key(run.model, runtime, run.record.backbone.fingerprint)
        _predict_parts(run, todo, folder, k, runtime.precision, config, (cache_root(cache_dir, config.address), key), result, len(files), progress)
    folder.write_manifest(parts, result.rows, len(result.failed))
    result.seconds = time.perf_counter() - started
    return result


def _predict_parts(
    run: Run, todo: list[Part], folder: PartFolder, k: int, precision: str, config: RayConfig, cache: tuple[str | None, dict[str, str]],
    result: RayPrediction, total: int, progress: Progress | None,
) -> None:
    """The Ray job over the blocks in ``todo``: decoding tasks, then the replicas writing the parts; counts into ``result``."""
    root, key = cache
    n_images = sum(len(p.files) for p in todo)
    with connected(config.address) as ray:
        from ray.data import DataContext

        with DataContext.current(data_context(preserve_order=False)):  # each part has its own file: any order
            items = [{"index": p.index, "name": p.name, "files": [os.fsencode(f) for f in p.files]} for p in todo]
            ds = ray.data.from_items(items, override_num_blocks=len(items))  # one block per part
            ds = ds.map(read_part, fn_kwargs={"preprocess": run.model.preprocess, "cache_root": root, "key": key}, **decode_args(ray))
            ds = ds.map(PartPredictor, fn_constructor_args=(run, k, precision, config.batch_size, n_images, str(folder.path), root, key), **pool_args(config))
            for row in ds.iter_rows():
                result.rows += int(row["rows"])
                result.computed += int(row["computed"])
                result.cached += int(row["cached"])
                result.failed.update(json.loads(row["failed"]))
                if progress:
                    progress("predict", result.rows, total)
