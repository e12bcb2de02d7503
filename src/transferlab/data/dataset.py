"""The loaded dataset: labelled, split samples plus the files that could not be used and why."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .splits import SPLITS


@dataclass(frozen=True)
class Sample:
    """One usable image."""

    path: Path  # absolute path
    label: int  # index into Dataset.classes
    split: str  # "train" | "val" | "test"


@dataclass(frozen=True)
class Skipped:
    """A file found in the dataset that cannot be used."""

    path: Path
    reason: str  # one short sentence, e.g. "empty file (0 bytes)"


@dataclass
class Dataset:
    """Images with labels and splits, as ``load_dataset`` or ``check_dataset`` found them."""

    root: Path  # the dataset folder (absolute)
    layout: str  # "folder" | "oxford" | "petimages"
    classes: list[str]  # sorted class names; Sample.label indexes this
    samples: list[Sample]  # sorted by path
    skipped: list[Skipped] = field(default_factory=list)  # sorted by path
    label: str = "class"  # "class" (folder, petimages), "breed" or "species" (oxford)
    given_split: bool = False  # True when the split came from the data, not from the seeded split
    species: dict[str, str] | None = None  # oxford breed labels only: class -> "cat" / "dog"
    split_options: dict[str, float | int] = field(default_factory=dict)  # val_frac, test_frac, seed: to load it again

    def split(self, name: str) -> list[Sample]:
        """The samples of one split, sorted by path.

        Raises:
            DataError: ``name`` is not "train", "val" or "test".
        """
        if name not in SPLITS:
            raise DataError(f"expected a split in {', '.join(SPLITS)}, got {name!r} — pick one of those")
        return [s for s in self.samples if s.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        """Class name -> split name -> number of samples (every class and split present, zeros included)."""
        table = {name: dict.fromkeys(SPLITS, 0) for name in self.classes}
        for s in self.samples:
            table[self.classes[s.label]][s.split] += 1
        return table

    def fingerprint(self) -> str:
        """16 hex digits of sha256 over the sorted (relative path, class, split, file size) of every sample.

        It identifies the data a run was trained on: adding, removing, relabelling, re-splitting or
        resizing a file changes it; moving the whole dataset folder does not.
        """
        digest = hashlib.sha256()
        for s in sorted(self.samples, key=lambda s: s.path):
            try:
                rel = s.path.relative_to(self.root).as_posix()
            except ValueError:  # a sample outside root (hand-built Dataset): use the path as is
                rel = s.path.as_posix()
            size = s.path.stat().st_size if s.path.exists() else -1
            digest.update(f"{rel}\t{self.classes[s.label]}\t{s.split}\t{size}\n".encode())
        return digest.hexdigest()[:16]

    def drop(self, paths: Mapping[Path, str] | Iterable[Path | str], reason: str = "cannot decode") -> list[Skipped]:
        """Move samples that turned out unusable (e.g. failed to decode during extraction) to ``skipped``.

        Args:
            paths: path -> reason (what ``Extraction.failed`` holds), or paths sharing ``reason``.
            reason: the reason for paths given without one.

        Returns:
            The new ``Skipped`` entries (paths that were not samples are ignored).
        """
        reasons = {Path(p).absolute(): r for p, r in paths.items()} if isinstance(paths, Mapping) else {
            Path(p).absolute(): reason for p in paths
        }
        if not reasons:
            return []
        dropped = [Skipped(s.path, reasons[s.path]) for s in self.samples if s.path in reasons]
        gone = {d.path for d in dropped}
        self.samples = [s for s in self.samples if s.path not in gone]
        self.skipped = sorted([*self.skipped, *dropped], key=lambda s: s.path)
        return dropped
