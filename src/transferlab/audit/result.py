"""What an audit found, and the files it writes: ``audit.json``, ``audit.csv`` and the fix list."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes

KINDS = ("exact duplicate", "near duplicate", "label", "outlier")
_HEADER = ("finding", "score", "image", "split", "label", "suggested label / partner")
AUDIT_VERSION = 1


@dataclass(frozen=True)
class Finding:
    """One image worth a look, and why."""

    kind: str  # one of KINDS
    path: str
    split: str
    label: str  # its given class
    score: float  # higher: more certainly a problem (duplicates: pixel agreement; label: 1 - p(given); outlier: robust z)
    reason: str  # one sentence
    suggested_label: str = ""  # label findings: the most probable label out of fold (probe and nearest images)
    partner: str = ""  # duplicates: the other image of the pair
    partner_split: str = ""
    partner_label: str = ""


@dataclass
class AuditResult:
    """Everything ``audit`` found on one dataset, with the numbers behind each finding."""

    root: str
    backbone: str
    n_images: int
    findings: list[Finding]
    counts: dict[str, dict[str, int]]  # class -> split -> images
    confused: list[dict[str, Any]]  # out-of-fold confusions: {"given", "predicted", "count"}, most first
    oof_accuracy: float  # the k-fold probe's accuracy on the labels as given
    thresholds: dict[str, float | str]
    fingerprint: str = ""  # of the data audited (Dataset.fingerprint)
    skipped: list[dict[str, str]] = field(default_factory=list)  # files that could not be decoded
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # written files

    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def summary(self) -> dict[str, int]:
        """Findings per kind (duplicates as pairs)."""
        return {kind: len(self.of(kind)) for kind in KINDS}

    @property
    def clean(self) -> bool:
        """Nothing above the thresholds (the CLI exits 0)."""
        return not self.findings

    def fix_paths(self) -> list[str]:
        """The files to review, once each: flagged images, and of each duplicate pair the copy in the later split."""
        return list(dict.fromkeys(f.path for f in self.findings))

    def table(self, limit: int = 10) -> Any:
        """The findings (at most ``limit`` rows per kind), the counts line and the files written, as ``rich`` renders them."""
        from rich.console import Group
        from rich.markup import escape
        from rich.table import Table

        table = Table(*_HEADER[:2])
        for name in _HEADER[2:]:
            table.add_column(name, overflow="fold")  # whole names, wrapped, rather than cut
        for row in self._rows(limit):
            table.add_row(*(escape(cell) for cell in row))
        parts: list[Any] = [table] if self.findings else []
        parts.append(escape(self._counts_line()))
        if self.files:
            parts.append(escape(f"wrote {', '.join(str(p) for p in self.files.values())}"))
        return Group(*parts)

    def __rich__(self) -> Any:
        return self.table()

    def _repr_html_(self) -> str:
        """What ``table()`` shows (the findings, at most 10 per kind, the counts line and the files written), for Jupyter."""
        from .. import _html

        return _html.block(
            _html.table(_HEADER, self._rows(10)) if self.findings else "",
            _html.text(self._counts_line()),
            _html.text(f"wrote {', '.join(str(p) for p in self.files.values())}") if self.files else "",
            title=f"Audit of {self.root}",
        )

    def _rows(self, limit: int) -> list[tuple[str, ...]]:
        """At most ``limit`` findings per kind, as text in ``_HEADER``'s order."""
        return [(kind, f"{f.score:.3f}", Path(f.path).name, f.split, f.label, f.suggested_label or Path(f.partner).name)
                for kind in self.summary() for f in self.of(kind)[:limit]]

    def _counts_line(self) -> str:
        return f"{self.n_images} images: " + ", ".join(f"{n} {k}" for k, n in self.summary().items()) + f"; out-of-fold probe accuracy {self.oof_accuracy:.3f}"

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("findings", "files")}
        out["audit_version"] = AUDIT_VERSION
        out["summary"] = self.summary()
        out["findings"] = [asdict(f) for f in self.findings]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditResult:
        keep = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k not in ("findings", "files")}
        return cls(**keep, findings=[Finding(**f) for f in data.get("findings", [])])

    def write(self, out: Path | str) -> dict[str, Path]:
        """Write ``audit.json`` and ``audit.csv`` into folder ``out``; returns name -> path."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        files = {"json": out / "audit.json", "csv": out / "audit.csv"}
        atomic_write_bytes(files["json"], json.dumps(self.to_dict(), indent=1, ensure_ascii=True).encode())
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["path", "finding", "score", "suggested_label", "partner", "split", "label", "reason"])
        for f in self.findings:
            writer.writerow([f.path, f.kind, f"{f.score:.4f}", f.suggested_label, f.partner, f.split, f.label, f.reason])
        atomic_write_bytes(files["csv"], buf.getvalue().encode("utf-8", "surrogateescape"))
        self.files.update(files)
        return files


def write_paths(paths: list[str], file: Path | str) -> Path:
    """One path a line, as the bytes of the name on disk (what ``train --exclude`` reads back)."""
    file = Path(file)
    atomic_write_bytes(file, b"".join(os.fsencode(p) + b"\n" for p in paths))
    return file


def read_paths(file: Path | str) -> list[Path]:
    """The paths of a fix list (blank lines and ``#`` comments ignored), relative ones from the current folder."""
    lines = Path(file).read_bytes().split(b"\n")
    return [Path(os.fsdecode(line.rstrip(b"\r"))).absolute() for line in lines if line.strip() and not line.lstrip().startswith(b"#")]
