"""The folder ``predict --ray`` writes: a Parquet dataset of one part per block of files, and its manifest.

A block is ``part_size`` consecutive files of the job's list; its part is named by its position and a
digest of its file names (``part-000003-<digest>.parquet``), so a rerun of the same job maps the same files
to the same part. Workers write each part to a temporary name and rename it into place, so a part under
its real name is complete; a rerun trusts the parts it finds (after checking that each lists the files of
its block) and computes only the others. ``_manifest.json`` names the job (files, -k, part size, model,
precision) so that a folder never mixes the answers of two jobs. Parquet readers skip names starting
with ``_`` or ``.``: ``pyarrow.parquet.read_table(folder)`` or ``pandas.read_parquet(folder)`` read the rows,
in the order the files were listed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes, display_path, write_json
from ..errors import ConfigError

MANIFEST = "_manifest.json"
FORMAT = "transferlab-ray-predict/1"
PART_SIZE = 256  # files per part: about 40 MB of decoded 224-px images travel between the stages per block


def _digest(names: Sequence[str]) -> str:
    return hashlib.sha256("\0".join(names).encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Part:
    """One block of the job: its position, its files (as listed) and the part file that holds their rows."""

    index: int
    files: tuple[str, ...]
    name: str  # part-<index>-<digest of the file names>.parquet


def plan_parts(files: Sequence[str], part_size: int = PART_SIZE) -> list[Part]:
    """``files`` cut into consecutive blocks of ``part_size``: the same list always gives the same parts.

    Raises:
        ConfigError: ``part_size`` below 1.
    """
    if part_size < 1:
        raise ConfigError(f"expected --part-size of at least 1, got {part_size}")
    count = -(-len(files) // part_size)
    width = max(6, len(str(count - 1)))  # names sort in the order of the files
    parts = []
    for index in range(count):
        block = tuple(files[index * part_size:(index + 1) * part_size])
        parts.append(Part(index, block, f"part-{index:0{width}d}-{_digest(block)[:16]}.parquet"))
    return parts


@dataclass(frozen=True)
class Job:
    """What decides a folder's rows: a rerun resumes only the same job."""

    files: int
    files_sha256: str
    part_size: int
    k: int
    columns: tuple[str, ...]
    model: str  # digest of what turns features into answers (see ``predict.model_digest``)
    precision: str

    @classmethod
    def of(cls, files: Sequence[str], part_size: int, k: int, columns: Sequence[str], model: str, precision: str) -> Job:
        return cls(len(files), _digest(files), part_size, k, tuple(columns), model, precision)

    def difference(self, other: dict[str, Any]) -> str | None:
        """The first setting in which ``other`` (a manifest's job) differs from this one, or None."""
        mine = json.loads(json.dumps(asdict(self)))
        words = {"files": "files", "files_sha256": "files", "part_size": "--part-size", "k": "-k", "columns": "columns", "model": "model", "precision": "--precision"}
        return next((words[key] for key, value in mine.items() if other.get(key) != value), None)


class PartFolder:
    """The output folder of one job: which parts are done, writing a part, the manifest."""

    def __init__(self, path: Path | str, job: Job) -> None:
        """Open ``path`` for ``job`` (created if missing); a folder of another job is refused.

        Raises:
            ConfigError: ``path`` is a file, a folder that is not a prediction folder, or one holding another job's rows.
        """
        self.path, self.job = Path(path), job
        shown = display_path(self.path)
        if self.path.suffix.lower() in (".csv", ".json"):
            raise ConfigError(f"expected --out to name a folder for a Parquet dataset, got {shown!r} — drop the {self.path.suffix} (read the folder with pyarrow, pandas or DuckDB)")
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"expected --out to be a folder, got the file {shown!r} — choose a new folder name")
        manifest = self.path / MANIFEST
        if manifest.is_file():
            other = self._read_manifest(manifest).get("job", {})
            differs = job.difference(other)
            if differs:
                raise ConfigError(f"{shown} holds the predictions of another job (its {differs} differ) — choose another --out, or delete the folder to start over")
        elif self.path.is_dir() and any(not p.name.startswith(".") for p in self.path.iterdir()):
            raise ConfigError(f"{shown} exists and is not a prediction folder (no {MANIFEST}) — choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _read_manifest(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read {display_path(path)} ({err}) — delete the folder to start over") from err
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(f"{display_path(path)} is not a manifest this transferlab writes — choose another --out")
        return data

    def done(self, part: Part) -> tuple[int, dict[str, str]] | None:
        """(rows, failed file -> reason) of a complete part of ``part``'s files, else None (missing or not whole)."""
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self.path / part.name, columns=["path", "error"])
        except (OSError, ValueError):  # missing, or damaged since: computed again
            return None
        paths = table.column("path").to_pylist()
        if paths != [display_path(f) for f in part.files]:
            return None
        return len(paths), {p: e for p, e in zip(paths, table.column("error").to_pylist()) if e is not None}

    def write_manifest(self, parts: Sequence[Part], rows: int | None = None, failed: int | None = None) -> None:
        """The job and its parts; ``rows`` and ``failed`` once every part is written (``complete``)."""
        complete = rows is not None
        write_json(self.path / MANIFEST, {"format": FORMAT, "job": asdict(self.job), "parts": [p.name for p in parts], "complete": complete, "rows": rows, "failed": failed})
        if complete:  # temporary files of writers killed mid-part (their block was written again since)
            for tmp in self.path.glob(".part-*.tmp"):
                tmp.unlink(missing_ok=True)


def write_part(path: Path | str, table: Any) -> None:
    """One part, written whole (temporary name, fsync, rename): a reader sees the whole part or none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(Path(path), sink.getvalue().to_pybytes())
