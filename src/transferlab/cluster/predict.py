"""``predict`` over Ray Data: files -> decoding tasks -> a pool of model replicas -> one row per file.

Each row holds the path, ``label`` (the answer: None for "none of these"), the top-k labels with their
probabilities, the in-distribution score where the run has one, and ``error`` (the reason) for a file that
could not be read or decoded. The numbers are ``Run.predict``'s: the same decoding
(``features.extract.load_image``), the same feature extractor and runtime (``features.runtime``), and the
same ``Prediction`` from the pooled features (``run.prediction.predict_features``).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._types import Progress
from ..errors import ConfigError, StorageError
from ..run.prediction import Prediction, predict_features
from ..run.run import Run
from .session import RayConfig, batch_rows, block_count, connected, data_context, decode_args, decode_batch, file_items, list_sources, pool_args

FORMATS = (".parquet", ".csv")


@dataclass
class RayPrediction:
    """What ``ray_predict`` wrote: one row per input file, in their order."""

    path: Path  # the .parquet or .csv file
    rows: int
    failed: dict[str, str] = field(default_factory=dict)  # file -> reason
    seconds: float = 0.0
    workers: int = 1


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


class Predictor:
    """A Ray actor: one model replica turning decoded batches into prediction rows."""

    def __init__(self, run: Run, k: int, precision: str, batch_size: int | None, n_images: int) -> None:
        import torch

        from ..features.runtime import optimize_for_inference, pick_runtime

        self.run, self.k = run, k
        self.runtime = pick_runtime(precision=precision)
        size = batch_size or (16 if self.runtime.device.type == "cpu" else 64)
        example = torch.zeros(size, 3, *run.model.preprocess.input_size, dtype=torch.uint8)
        self.forward = optimize_for_inference(run.model.feature_extractor(), self.runtime, example, n_images)

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import torch

        from ..features.runtime import inference

        errors = [str(e) or None for e in batch["error"]]
        ok = [i for i, e in enumerate(errors) if e is None]
        answers: list[Prediction] = []
        if ok:
            images = torch.from_numpy(np.ascontiguousarray(batch["image"][ok]))  # (N_ok, 3, H, W) uint8
            with inference(self.runtime):
                features = self.forward(images.to(self.runtime.device).contiguous(memory_format=torch.channels_last)).float().cpu()
            _, answers = predict_features(self.run, features, self.k)  # the Prediction predict gives
        return prediction_rows([str(p) for p in batch["path"]], errors, answers, self.k, has_in_distribution(self.run))


class _TableWriter:
    """Rows streamed into ``path`` (.parquet or .csv) through a temporary file renamed into place at the end."""

    def __init__(self, path: Path, schema: Any) -> None:
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        self.path, self.schema = path, schema
        self.tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        self.writer = pq.ParquetWriter(self.tmp, schema) if path.suffix.lower() == ".parquet" else pcsv.CSVWriter(self.tmp, schema)

    def write(self, table: Any) -> None:
        self.writer.write_table(table.select(self.schema.names).cast(self.schema))

    def commit(self) -> None:
        self.writer.close()
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.writer.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def ray_predict(
    run: Run,
    sources: Sequence[Path | str],
    out: Path | str,
    k: int = 5,
    *,
    config: RayConfig | None = None,
    progress: Progress | None = None,
) -> RayPrediction:
    """Top-k predictions for every file under ``sources``, computed on Ray, written to ``out`` (.parquet or .csv).

    Args:
        run: the trained run (or ``from_backbone``); it travels to the workers in Ray's object store.
        sources: image files, folders, or URIs a pyarrow filesystem reaches (``s3://bucket/photos``).
        out: the table to write, one row per file in the order listed; replaced whole at the end.
        k: labels per file.
        config: cluster address, replicas, GPUs per replica, batch size, precision.
        progress: called with ("predict", done, total) as rows arrive.

    Raises:
        ConfigError: ``out`` is neither .parquet nor .csv, a setting is impossible, or Ray is missing.
        DataError: a source does not exist or holds no images.
    """
    config = config or RayConfig()
    config.check()
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ConfigError(f"expected --out ending in .parquet or .csv, got {str(out)!r}")
    started = time.perf_counter()
    files = list_sources(sources)
    k = max(1, min(k, len(run.classes)))
    schema = row_schema(k, has_in_distribution(run))
    with connected(config.address) as ray:
        from ray.data import DataContext

        with DataContext.current(data_context()):
            ds = ray.data.from_items(file_items(files), override_num_blocks=block_count(len(files), config))
            ds = ds.map_batches(decode_batch, fn_kwargs={"preprocess": run.model.preprocess}, batch_size=batch_rows(config), **decode_args(ray))
            ds = ds.map_batches(
                Predictor, fn_constructor_args=(run, k, config.precision, config.batch_size, len(files)),
                batch_size=batch_rows(config), batch_format="numpy", **pool_args(config),
            )
            result = _write(ds, out, schema, len(files), progress)
    result.seconds, result.workers = time.perf_counter() - started, config.workers
    return result


def _write(ds: Any, out: Path, schema: Any, total: int, progress: Progress | None) -> RayPrediction:
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = _TableWriter(out, schema)
    rows, failed = 0, {}
    try:
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            writer.write(table)
            rows += table.num_rows
            for path, error in zip(table.column("path").to_pylist(), table.column("error").to_pylist()):
                if error is not None:
                    failed[path] = error
            if progress:
                progress("predict", rows, total)
        writer.commit()
    except OSError as err:
        writer.abort()
        if isinstance(err, StorageError):
            raise
        raise StorageError(f"cannot write {out} ({err.strerror or err}) — choose another --out") from err
    except BaseException:
        writer.abort()
        raise
    return RayPrediction(out, rows, failed)
