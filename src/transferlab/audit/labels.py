"""Likely label errors: out-of-fold probabilities from the probe and the nearest neighbours, then a rule.

The default rule, ``low_confidence_issues``, flags an image when the probability of its given label is
under a fraction of what that class's images typically get; the probabilities average the k-fold probe
and a leave-one-out vote of the nearest neighbours (the two err on different images). With 5% of the
labels flipped, on seven sets from seven domains it flags fewer of the probe's own mistakes than
confident learning (BENCHMARKS.md, "Label errors").

``find_label_issues`` is the core of confident learning (Northcutt, Jiang & Chuang, "Confident Learning:
Estimating Uncertainty in Dataset Labels", JAIR 2021) as cleanlab's ``filter.find_label_issues`` runs it
by default (``filter_by="prune_by_noise_rate"``): per-class confidence thresholds, the
calibrated confident joint of given and likely true labels, and in each given class the examples with
the largest margin towards each other class pruned, as many as the joint estimates. Written here
(60 lines) rather than imported because cleanlab brings pandas and scikit-learn, which nothing else
of ours needs; tests/audit compares the two on the same inputs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..data.roles import stratified_folds
from ..features.runtime import cpu_count, single_threaded_ops
from ..train.config import ProbeConfig
from ..train.probe import fit_probe

_EPS = 1e-6  # cleanlab's FLOATING_POINT_COMPARISON


L2_GRID = (1.0, 0.1, 0.01)  # the probe's strongest three: on Oxford mini and clothing with 5% of labels flipped,
# its nine-value grid at 100 L-BFGS iterations flagged the same images, 4x slower
CHOOSE_ON = 2000  # images (a stratified sample) the L2 strength is chosen on


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, n_classes: int, folds: int = 5, seed: int = 0, max_iter: int = 30) -> np.ndarray:
    """Each image's class probabilities from a probe that never saw it (k-fold on cached features).

    The L2 strength is chosen once from ``L2_GRID`` on a holdout of all images, then kept for every fold.

    Shape:
        features (N, D), labels (N,) -> (N, C) float64.
    """
    with single_threaded_ops():  # small L-BFGS steps: one thread is faster, several times so on a busy machine
        return _out_of_fold(np.asarray(features), np.asarray(labels), n_classes, folds, seed, max_iter)


def _out_of_fold(features: np.ndarray, labels: np.ndarray, n_classes: int, folds: int, seed: int, max_iter: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=n_classes)
    k = max(2, min(folds, int(counts[counts > 0].min())))
    sample = _subsample(labels, CHOOSE_ON, seed)
    chosen = fit_probe(features[sample], labels[sample], n_classes, config=ProbeConfig(l2_grid=L2_GRID, max_iter=max_iter), seed=seed, refit=False, dtype=torch.float32).l2
    fixed = ProbeConfig(l2_grid=(chosen,), max_iter=max_iter)
    probs = np.zeros((len(labels), n_classes))
    everything = np.arange(len(labels))

    def one(fold: np.ndarray) -> None:
        fit = np.setdiff1d(everything, fold)
        head = fit_probe(features[fit], labels[fit], n_classes, features[fold], labels[fold], fixed, seed, refit=False, dtype=torch.float32)
        logits = np.asarray(features[fold], dtype=np.float64) @ head.weight.double().numpy().T + head.bias.double().numpy()
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        probs[fold] = e / e.sum(1, keepdims=True)

    with ThreadPoolExecutor(cpu_count()) as pool:  # folds are independent; torch releases the GIL in its kernels
        list(pool.map(one, stratified_folds(labels, k, seed)))
    return probs


def _subsample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` indices, every class kept in proportion (at least 2 of each)."""
    if len(labels) <= n:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[: max(2, round(n * (labels == c).sum() / len(labels)))] for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def find_label_issues(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Confident learning's label issues (cleanlab's default filter), as a boolean mask.

    Args:
        labels: (N,) given labels in [0, C).
        probs: (N, C) out-of-fold predicted probabilities.
    """
    labels = np.asarray(labels)
    n, k = probs.shape
    counts = np.bincount(labels, minlength=k)
    thresholds = class_confidence(labels, probs, empty=2.0).clip(min=2 * _EPS)
    confident = probs >= thresholds - _EPS
    n_confident = confident.sum(1)
    guess = np.where(n_confident > 1, probs.argmax(1), confident.argmax(1))  # likely true label
    some = n_confident > 0
    joint = np.zeros((k, k), dtype=np.int64)  # [given, likely true]
    np.add.at(joint, (labels[some], guess[some]), 1)
    np.fill_diagonal(joint, joint.diagonal().clip(min=1))
    prune = _keep_one_per_class(_calibrate(joint, counts).T)  # [true, given]: how many to prune
    issues = np.zeros(n, dtype=bool)
    for given in range(k):
        rows = np.flatnonzero(labels == given)
        if len(rows) <= 1:
            continue
        for true in range(k):
            count = prune[true, given]
            if true != given and count > 0:
                margin = probs[rows, true] - probs[rows, given]
                issues[rows[np.argsort(-margin, kind="quicksort")[:count]]] = True
    nudged = probs.copy()
    nudged[np.arange(n), labels] += _EPS
    issues[nudged.argmax(1) == labels] = False  # the model agrees with the label: not an issue
    return issues


def _calibrate(joint: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Rows rescaled to the given label counts, the whole to N, rounded keeping each row's total."""
    cal = (joint.T / np.clip(joint.sum(1), 1e-100, None) * counts).T
    cal = cal / np.clip(cal.sum(), 1e-100, None) * counts.sum()
    return np.stack([_round_keeping_sum(row) for row in cal])


def _round_keeping_sum(floats: np.ndarray) -> np.ndarray:
    ints = floats.round()
    target = floats.sum().round()
    while abs(ints.sum().round() - target) > _EPS:
        diff = np.round(target - ints.sum().round())
        step = -1 if diff < 0 else 1
        order = np.argsort(floats - ints)[::-step][: min(int(abs(diff)), len(floats))]
        ints[order] += step
    return ints


def _keep_one_per_class(prune: np.ndarray) -> np.ndarray:
    """At least one example of every class stays; noise counts shrink to pay for it; floored to ints."""
    diagonal = prune.diagonal()
    kept = np.maximum(diagonal, 1)
    per_column = np.maximum(np.count_nonzero(prune, axis=0) - 1.0, 1.0)
    out = prune - (kept - diagonal) / per_column
    out[out < 0] = 0
    np.fill_diagonal(out, kept)
    return out.astype(np.int64)


def neighbour_probabilities(labels: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray], n_classes: int, k: int = 10, temperature: float = 0.05) -> np.ndarray:
    """Each image's class probabilities from its ``k`` nearest other images' labels (leave-one-out).

    A vote weighted by ``exp((cosine - 1) / temperature)``, so a near copy outweighs a distant neighbour,
    smoothed by 1e-3 so that no class gets exactly zero.

    Args:
        neighbours: (similarities, indices) of each image's nearest other images, most similar first.

    Shape:
        labels (N,) -> (N, C) float64.
    """
    labels = np.asarray(labels)
    sims, idx = neighbours
    sims, idx = sims[:, :k].astype(np.float64), idx[:, :k]
    votes = np.full((len(labels), n_classes), 1e-3)
    rows = np.repeat(np.arange(len(labels)), sims.shape[1])
    np.add.at(votes, (rows, labels[idx].ravel()), np.exp((sims - 1.0) / temperature).ravel())
    return votes / votes.sum(1, keepdims=True)


def low_confidence_issues(labels: np.ndarray, probs: np.ndarray, fraction: float = 0.15) -> np.ndarray:
    """Images whose given label gets under ``fraction`` of its class's typical probability, as a boolean mask.

    "Typical" is the mean probability of class c over the images labelled c (confident learning's
    per-class threshold), so a hard class is not flagged wholesale; an image whose given label is the
    most probable one is never flagged.

    Args:
        labels: (N,) given labels in [0, C).
        probs: (N, C) out-of-fold predicted probabilities.
    """
    labels = np.asarray(labels)
    own = self_confidence(labels, probs)
    return (own < fraction * class_confidence(labels, probs)[labels]) & (probs.argmax(1) != labels)


def class_confidence(labels: np.ndarray, probs: np.ndarray, empty: float = 1.0) -> np.ndarray:
    """Per class c, the mean probability of c over the images labelled c (``empty`` for a class with none):
    confident learning's per-class threshold, and what the relative rule counts as typical.

    Shape:
        labels (N,), probs (N, C) -> (C,).
    """
    labels = np.asarray(labels)
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)
    sums = np.bincount(labels, weights=self_confidence(labels, probs), minlength=k)
    return np.where(counts > 0, sums / np.maximum(counts, 1), empty)


def self_confidence(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Probability the model gives each image's own label (low: likely wrong)."""
    return probs[np.arange(len(labels)), np.asarray(labels)]
