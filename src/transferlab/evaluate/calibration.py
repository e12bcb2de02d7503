"""Calibration and out-of-distribution metrics (pure numpy), and their two figures.

ECE follows Guo et al. (2017): top-label confidence in equal-width bins, the gap between mean
confidence and accuracy weighted by each bin's share of images. AUROC is the Mann-Whitney
statistic (ties count half), tested against scikit-learn; FPR95 is the share of out-of-distribution
images accepted when the threshold accepts 95 % of the in-distribution ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from .metrics import _check_probs, _sample_losses
from .plots import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ECE_BINS = 15


def reliability_bins(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin: ``count``, mean ``confidence`` and ``accuracy`` (NaN when empty)."""
    y_true, probs = _check_probs(y_true, probs)
    conf, correct = probs.max(1), probs.argmax(1) == y_true
    which = np.minimum((conf * bins).astype(int), bins - 1)  # confidence 1.0 goes to the last bin
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, conf, minlength=bins) / count
        accuracy = np.bincount(which, correct.astype(float), minlength=bins) / count
    return {"count": count, "confidence": confidence, "accuracy": accuracy}


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over bins of (share of images) x |accuracy - mean confidence|: 0 is perfectly calibrated."""
    b = reliability_bins(y_true, probs, bins)
    full = b["count"] > 0
    return float(np.sum(b["count"][full] / b["count"].sum() * np.abs(b["accuracy"][full] - b["confidence"][full])))


def log_loss(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Mean -log p(true class), probabilities clipped at machine epsilon (as ``classification_report``)."""
    y_true, probs = _check_probs(y_true, probs)
    return float(np.mean(_sample_losses(y_true, probs)))


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Chance that an in-distribution image outscores an out-of-distribution one (ties: half)."""
    a, b = np.asarray(in_scores, float), np.asarray(out_scores, float)
    if not len(a) or not len(b):
        raise InputError(f"expected in- and out-of-distribution scores, got {len(a)} and {len(b)}")
    ranks = _average_ranks(np.concatenate([a, b]))
    return float((ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2) / (len(a) * len(b)))


def fpr_at(in_scores: np.ndarray, out_scores: np.ndarray, accept: float = 0.95) -> float:
    """Share of out-of-distribution images accepted by the threshold that accepts ``accept`` of the others."""
    threshold = acceptance_threshold(in_scores, accept)
    return float(np.mean(np.asarray(out_scores, float) >= threshold))


def acceptance_threshold(scores: np.ndarray, accept: float) -> float:
    """The highest threshold (``score >= t`` accepted) that accepts at least ``accept`` of ``scores``."""
    if not 0.0 < accept <= 1.0:
        raise InputError(f"expected an acceptance rate in (0, 1], got {accept}")
    s = np.sort(np.asarray(scores, float))
    if not len(s):
        raise InputError("expected at least one score to choose a threshold on, got none")
    return float(s[int(np.floor((1.0 - accept) * len(s) + 1e-9))])


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, ranks)
    return sums[inverse] / counts[inverse]


def plot_reliability(y_true: np.ndarray, before: np.ndarray, after: np.ndarray, bins: int = ECE_BINS) -> Figure:
    """Reliability diagram: accuracy against confidence per bin, before and after temperature scaling."""
    fig = new_figure((9, 4))
    edges = np.linspace(0, 1, bins + 1)
    for ax, probs, title in zip(fig.subplots(1, 2), (before, after), ("raw softmax", "temperature-scaled")):
        b = reliability_bins(y_true, probs, bins)
        full = b["count"] > 0
        ax.bar(edges[:-1][full], b["accuracy"][full], width=1 / bins, align="edge", edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ax.plot(b["confidence"][full], b["accuracy"][full], "o", color="tab:red", ms=4, label="mean confidence")
        ece = expected_calibration_error(y_true, probs, bins)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy", title=f"{title}: ECE {ece:.3f}")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_score_histogram(in_scores: np.ndarray, out_scores: np.ndarray, threshold: float | None, method: str, names: tuple[str, str] = ("in distribution", "out of distribution")) -> Figure:
    """The two score distributions, and the run's threshold as a vertical line."""
    fig = new_figure((7, 4))
    ax = fig.subplots()
    both = np.concatenate([in_scores, out_scores])
    edges = np.linspace(both.min(), both.max(), 41) if np.ptp(both) > 0 else 10
    ax.hist(in_scores, bins=edges, alpha=0.6, density=True, label=f"{names[0]} ({len(in_scores)})")
    ax.hist(out_scores, bins=edges, alpha=0.6, density=True, label=f"{names[1]} ({len(out_scores)})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", label="the run's threshold")
    ax.set(xlabel=f"in-distribution score ({method}; higher: more like the training images)", ylabel="density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
