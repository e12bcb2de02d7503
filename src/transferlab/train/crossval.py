"""Cross-validated evidence for choices made before training: out-of-fold correctness of the linear probe,
repeated over several fold assignments, and the paired bootstrap that says whether one choice clearly beats
another (the keep rule's test, on every image of train + val instead of one small holdout).

``compare`` and ``train --backbone auto`` both decide with ``ladder``: an option replaces the default only when
the corrected repeated k-fold t-test is at least ``min_win_rate`` sure it is better (the keep rule's 90 %,
split between the challengers), so a lucky fold is not kept; of those that clear it, the most accurate wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..data.roles import stratified_folds
from ..features.runtime import intra_op_threads
from .config import ProbeConfig
from .probe import fit_probe

SCORE_ITERS = 20  # L-BFGS iterations per fit while scoring (see ``out_of_fold``)
SCORE_GRID_STEP = 3  # scoring searches every SCORE_GRID_STEP-th L2 strength of the probe's grid (1, 0.03, 0.001)
RESAMPLES = 2000
SMALL_PROBLEM = 4_000_000  # features (N x D) below this are fitted on one thread
REPEAT_BELOW = 2000  # fewer images than this: three fold assignments instead of one (the probe's fits are cheap there)


def repeats_for(n_images: int) -> int:
    """How many seeded fold assignments to average over: 3 on small sets, where one assignment is noisy."""
    return 3 if n_images < REPEAT_BELOW else 1


@dataclass
class OutOfFold:
    """Out-of-fold verdicts of the probe: ``correct`` (repeats, N) and ``predicted`` (repeats, N) per image."""

    correct: np.ndarray
    predicted: np.ndarray
    fold_accuracy: list[float]  # one per fold and repeat
    fold_balanced: list[float]
    folds: int

    @property
    def per_image(self) -> np.ndarray:
        """(N,) share of repeats in which each image was classified right."""
        return self.correct.mean(0)

    def summary(self) -> dict[str, float | int]:
        """Mean and spread of accuracy and balanced accuracy over folds (and repeats)."""
        return {
            "accuracy": round(float(np.mean(self.fold_accuracy)), 4), "accuracy_sd": round(float(np.std(self.fold_accuracy)), 4),
            "balanced_accuracy": round(float(np.mean(self.fold_balanced)), 4), "balanced_accuracy_sd": round(float(np.std(self.fold_balanced)), 4),
            "folds": self.folds,
        }


def out_of_fold(x: torch.Tensor, y: np.ndarray, folds: int = 5, repeats: int = 1, seed: int = 0, probe: ProbeConfig = ProbeConfig()) -> OutOfFold:
    """Each image classified by a probe that never saw it, for ``repeats`` seeded fold assignments.

    Each fold's probe chooses its L2 strength on a holdout of the other folds only (``ProbeConfig.folds=1``),
    so no choice sees the images it is scored on. To keep k folds x options within seconds, the search uses
    every third strength of the grid, ``SCORE_ITERS`` L-BFGS iterations and float32: on clothing (3,341
    images), dtd10 and sign-digits (750 each) every backbone's accuracy within 0.5 points of the search over
    every other strength at 30 iterations in float64, in 0.45x the time. ``train`` fits its head with the
    full recipe.

    Shape:
        x (N, D), y (N,) ints -> correct (repeats, N).
    """
    n_classes = int(y.max()) + 1
    counts = np.bincount(y)
    # every fold judges every class where the classes are big enough; else (a class of one or two photos) the
    # folds still split the images, and such a class is scored only in the folds that hold it
    k = max(2, min(folds, int(counts[counts > 0].min()))) if counts[counts > 0].min() >= 2 else min(folds, len(y) // 2)
    inner = replace(probe, folds=1, l2_grid=probe.l2_grid[::SCORE_GRID_STEP], max_iter=min(probe.max_iter, SCORE_ITERS))
    predicted = np.zeros((repeats, len(y)), dtype=int)
    acc, bal = [], []
    with intra_op_threads(1 if x.numel() < SMALL_PROBLEM else 0):  # small fits lose time to thread hand-offs (0.09 s on one thread, 2.7 s on two busy cores)
        for r in range(repeats):
            _one_assignment(x, y, k, seed + 1000 * r, n_classes, inner, predicted[r], acc, bal)
    return OutOfFold(predicted == y[None, :], predicted, acc, bal, k)


def _one_assignment(x: torch.Tensor, y: np.ndarray, k: int, seed: int, n_classes: int, inner: ProbeConfig, predicted: np.ndarray, acc: list[float], bal: list[float]) -> None:
    """Fill ``predicted`` (N,) with one seeded k-fold assignment's out-of-fold classes; append each fold's scores."""
    for f, held in enumerate(stratified_folds(y, k, seed)):
        train = np.setdiff1d(np.arange(len(y)), held)
        head = fit_probe(x[train], y[train], n_classes, config=inner, seed=seed + f, dtype=torch.float32)
        pred = (x[held].float() @ head.weight.T + head.bias).argmax(1).numpy()
        predicted[held] = pred
        acc.append(float((pred == y[held]).mean()))
        bal.append(float(np.mean([(pred[y[held] == c] == c).mean() for c in np.unique(y[held])])))


def win_rate(baseline: np.ndarray, candidate: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> float:
    """Share of bootstrap resamples of the images in which ``candidate`` is right on more of them than ``baseline``.

    Both are per-image correctness (bools, or shares of repeats) of the same images in the same order; a tie
    is no win. It sees only which images were sampled, not that another training sample would have given
    other verdicts, so on cross-validated verdicts ``confidence`` is the test to decide by.
    """
    b, c = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    if not len(b):
        return 0.0
    idx = np.random.default_rng(seed).integers(0, len(b), size=(resamples, len(b)))
    return float(((c - b)[idx].sum(1) > 1e-9).mean())


def confidence(baseline: Sequence[float], candidate: Sequence[float], folds: int) -> float:
    """How sure the candidate is better: one minus the one-sided p-value of the corrected repeated k-fold t-test
    (Nadeau & Bengio 2003; Bouckaert & Frank 2004) on per-fold accuracy differences of the same folds.

    The variance of the J = repeats x folds differences is inflated by 1/J + 1/(folds - 1), because the folds'
    training sets overlap: the plain paired test (and a bootstrap of the images) would call a lucky difference
    between two equally good options a clear win far more often than its level says.
    """
    d = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    if len(d) < 2 or d.shape != np.shape(baseline):
        return 0.0
    var = d.var(ddof=1) * (1.0 / len(d) + 1.0 / (folds - 1))
    if var <= 0:
        return 1.0 if d.mean() > 0 else 0.0
    return _t_cdf(float(d.mean() / np.sqrt(var)), len(d) - 1)


def _t_cdf(t: float, df: int) -> float:
    """Student's t distribution function (numerically integrated density: exact to ~1e-6, no scipy needed)."""
    grid = np.linspace(0.0, abs(t), 2001)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = np.exp(log_norm - (df + 1) / 2 * np.log1p(grid**2 / df))
    half = float(np.trapezoid(density, grid))
    return 0.5 + half if t >= 0 else 0.5 - half


@dataclass
class Step:
    """One option's verdict: its out-of-fold accuracy and how sure the test is that it beats the default."""

    name: str
    accuracy: float
    win_rate: float | None  # its ``confidence`` of beating ``against`` (None for the starting option)
    against: str | None
    kept: bool  # beat the default clearly (the default itself: True)


def required_win_rate(min_win_rate: float, challengers: int) -> float:
    """The win rate each of ``challengers`` options must reach so that, when none is truly better, any is kept
    about as rarely as one alone would be at ``min_win_rate`` (Bonferroni: 0.9 for one, 0.95 for two)."""
    return 1.0 - (1.0 - min_win_rate) / max(1, challengers)


def ladder(names: Sequence[str], fold_accuracy: Sequence[Sequence[float]], min_win_rate: float, folds: int) -> tuple[int, list[Step]]:
    """The index of the option to use, and each option's verdict.

    ``names[0]`` is the default (the cheapest); every other option is tested against it on the same folds,
    and the most accurate of those the corrected t-test is at least ``required_win_rate`` sure beat the
    default is used; none: the default.
    """
    need = required_win_rate(min_win_rate, len(names) - 1)
    steps = [Step(names[0], float(np.mean(fold_accuracy[0])), None, None, True)]
    for i in range(1, len(names)):
        rate = confidence(fold_accuracy[0], fold_accuracy[i], folds)
        steps.append(Step(names[i], float(np.mean(fold_accuracy[i])), rate, names[0], rate >= need))
    pick = max((i for i, s in enumerate(steps) if s.kept), key=lambda i: (steps[i].accuracy, -i))
    return pick, steps
