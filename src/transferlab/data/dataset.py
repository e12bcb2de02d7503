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


@dataclass(frozen=True)
class Warned:
    """Something a user should look at that does not stop training: a tiny image, a class left out,
    the same image in two splits (leakage)."""

    path: Path  # the file (or class folder) concerned
    reason: str  # one short sentence, e.g. "same bytes as train/cat/1.jpg (train): test/train leakage"


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
    warnings: list[Warned] = field(default_factory=list)  # kept (or left-out classes), but worth a look

    def split(self, name: str) -> list[Sample]:
        """The samples of one split, sorted by path.

        Raises:
            DataError: ``name`` is not "train", "val" or "test".
        """
        if name not in SPLITS:
            raise DataError(f"expected a split in {', '.join(SPLITS)}, got {name!r} — pick one of those")
        return [s for s in self.samples if s.split == name]

    def evaluation_split(self, split: str | None = "auto") -> tuple[list[Sample], str]:
        """The samples a score is reported on, and the split's name: ``auto`` (or None) takes test, else val,
        else every image ("all"); ``all``, ``train``, ``val`` or ``test`` take that one.

        Raises:
            DataError: the named split is empty or unknown.
        """
        if split in (None, "auto"):
            for name in ("test", "val"):
                if self.split(name):
                    return self.split(name), name
            return list(self.samples), "all"
        if split == "all":
            return list(self.samples), "all"
        samples = self.split(split)
        if not samples:
            raise DataError(f"the {split} split of {self.root} is empty — choose --split test, val, train or all")
        return samples, split

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
            # surrogateescape: file names that are not UTF-8 keep their own bytes
            digest.update(f"{rel}\t{self.classes[s.label]}\t{s.split}\t{size}\n".encode("utf-8", "surrogateescape"))
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

    def leave_out_classes(self, reasons: Mapping[str, str]) -> None:
        """Remove whole classes (class name -> why): their samples move to ``skipped``, a warning per
        class is added, and the remaining classes are re-indexed."""
        if not reasons:
            return
        gone = [s for s in self.samples if self.classes[s.label] in reasons]
        self.skipped = sorted(
            [*self.skipped, *(Skipped(s.path, f"left out with its class {self.classes[s.label]!r}") for s in gone)],
            key=lambda s: s.path,
        )
        self.warnings.extend(Warned(self.root / name, f"class {name!r} {why}: left out") for name, why in sorted(reasons.items()))
        kept = [c for c in self.classes if c not in reasons]
        index = {name: i for i, name in enumerate(kept)}
        self.samples = [Sample(s.path, index[self.classes[s.label]], s.split) for s in self.samples if self.classes[s.label] not in reasons]
        self.classes = kept
        if self.species is not None:
            self.species = {k: v for k, v in self.species.items() if k in index}
