"""A seeded, stratified train/val/test split that depends only on the file names, never on listing order."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError

SPLITS = ("train", "val", "test")


def check_fractions(val_frac: float, test_frac: float) -> None:
    """Raise ``DataError`` unless both fractions are in [0, 1) and leave room for training images."""
    for name, value in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0 <= value < 1:
            raise DataError(f"expected {name} in [0, 1), got {value} — pass a fraction such as 0.1")
    if val_frac + test_frac >= 1:
        raise DataError(
            f"expected val_frac + test_frac < 1, got {val_frac} + {test_frac} — leave some images for training"
        )


def _half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def stratified_split(
    by_class: Mapping[str, Sequence[Path]], val_frac: float, test_frac: float, seed: int
) -> dict[Path, str]:
    """Assign every path to "train", "val" or "test", class by class.

    Per class the paths are sorted, shuffled with ``numpy.random.default_rng`` seeded by ``seed`` and
    the class name (so adding a class leaves the others' splits unchanged), then ``round(test_frac * n)``
    go to test and ``round(val_frac * n)`` to val (rounded half up), always keeping at least one
    training image (val shrinks first, then test).

    Args:
        by_class: class name -> its image paths.
        val_frac: fraction of each class for validation (0 for none).
        test_frac: fraction of each class for testing (0 for none).
        seed: the shuffle seed.

    Returns:
        path -> split name.

    Raises:
        DataError: a fraction is outside [0, 1), they sum to 1 or more, or the seed is negative.
    """
    check_fractions(val_frac, test_frac)
    if seed < 0:
        raise DataError(f"expected a seed >= 0, got {seed} — pass a non-negative integer")
    assignment: dict[Path, str] = {}
    for name in sorted(by_class):
        paths = sorted(by_class[name])
        n = len(paths)
        n_test = min(_half_up(test_frac * n), max(n - 1, 0))
        n_val = min(_half_up(val_frac * n), max(n - 1 - n_test, 0))
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8", "surrogateescape"))])
        order = rng.permutation(n)
        for rank, index in enumerate(order):
            assignment[paths[index]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return assignment
