"""Which images each split serves for: fitting, choosing, or the held-out score.

One rule for every layout: the split whose score is reported is never used for anything else — not to
fit or refit the head, not to choose regularisation, epochs or a recipe.

    train/ + val/ + test/ (or no given split, split by seed)  fit on train, choose on val, report test
    train/ + val/                                             fit and choose on train, report val
    train/ + test/                                            fit and choose on train, report test
    train/ only                                               fit and choose on train, nothing reported

"Choose on train" means on images held out of the training split (a stratified holdout, or k-fold on
cached features where that is cheap); what the user reads is always on images no choice has seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import Dataset, Sample


@dataclass(frozen=True)
class Roles:
    """The samples each part of training may touch, and the split that is scored."""

    train: list[Sample]  # learnt from
    val: list[Sample]  # choices are made on these; empty: carve them from ``train``
    report: list[Sample]  # held out from every fit and choice; the score the user reads
    report_split: str | None  # "test" | "val" | None (nothing held out)


def split_roles(dataset: Dataset) -> Roles:
    """The roles of ``dataset``'s splits under the one rule (see the module docstring)."""
    train, val, test = (dataset.split(name) for name in ("train", "val", "test"))
    if test:
        return Roles(train, val, test, "test")
    if val:
        return Roles(train, [], val, "val")
    return Roles(train, [], [], None)


def stratified_holdout(y: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with about ``frac`` of each class in val, at least one left in train."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = min(int(round(frac * len(idx))), len(idx) - 1)
        val.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(val, dtype=int))


def carve(samples: list[Sample], frac: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(kept for fitting, held out for choosing): a stratified holdout of ``samples``."""
    tr, va = stratified_holdout(np.array([s.label for s in samples]), frac, seed)
    return [samples[i] for i in tr], [samples[i] for i in va]


def stratified_folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """``k`` disjoint index arrays covering ``y``, each class dealt round-robin after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for c in np.unique(y):
        for j, i in enumerate(rng.permutation(np.flatnonzero(y == c))):
            folds[(j + offset) % k].append(int(i))
        offset += int((y == c).sum())  # the next class starts where this one stopped: folds stay even
    return [np.sort(np.array(f, dtype=int)) for f in folds]
