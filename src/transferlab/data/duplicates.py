"""Exact duplicates across splits: the same photo in train and test makes test scores lie."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from .._io import display_path
from .dataset import Dataset, Warned

_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def content_hash(data: bytes) -> str:
    """Hash of a file's bytes: the same photo under another name or folder has the same hash."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def find_leaks(dataset: Dataset, hashes: Mapping[Path, str | None]) -> list[Warned]:
    """One warning per sample whose exact bytes also appear in an earlier split (train < val < test).

    Args:
        dataset: the split samples.
        hashes: sample path -> ``content_hash`` of its bytes (paths without one are ignored).

    Returns:
        Warnings naming the pair, e.g. ``test/cat/7.jpg``: "same bytes as train/cat/3.jpg (train):
        train/test leakage".
    """
    by_hash: dict[str, list[tuple[int, Path, str]]] = defaultdict(list)
    for s in dataset.samples:
        digest = hashes.get(s.path)
        if digest is not None:
            by_hash[digest].append((_SPLIT_ORDER[s.split], s.path, s.split))
    leaks: list[Warned] = []
    for group in by_hash.values():
        if len({split for _, _, split in group}) < 2:
            continue
        group.sort()
        first_rank, first, first_split = group[0]
        for rank, path, split in group[1:]:
            if rank > first_rank:
                leaks.append(Warned(path, f"same bytes as {_relative(first, dataset.root)} ({first_split}): {first_split}/{split} leakage"))
    return sorted(leaks, key=lambda w: w.path)


def _relative(path: Path, root: Path) -> str:
    try:
        return display_path(path.relative_to(root))
    except ValueError:
        return display_path(path)
