"""Classification metrics as pure numpy functions.

Everything here takes integer labels and softmax probabilities and returns numbers or plain
Python containers, so a report can be written straight to JSON. The formulas follow
scikit-learn (tested against it), which stays a development dependency only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InputError

# Probabilities are clipped before the log so that a confidently wrong prediction costs a
# large but finite loss instead of inf. The reported log loss clips at eps (-log ~ 36), as
# scikit-learn does; ranking for top_losses clips at tiny (-log ~ 708) so that confident
# mistakes below eps still come out in order instead of tying.
_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)
_MAX_MOST_CONFUSED = 10


def _check_labels(y: np.ndarray, name: str, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise InputError(f"expected {name} of shape (N,), got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"expected integer class indices in {name}, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise InputError(
            f"expected {name} in [0, {n_classes - 1}], got values in [{y.min()}, {y.max()}]"
        )
    return y


def _check_probs(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 1:
        raise InputError(f"expected probs of shape (N, C), got shape {probs.shape}")
    if not np.all(np.isfinite(probs)):
        raise InputError("expected finite probabilities, got NaN or inf")
    y_true = _check_labels(y_true, "y_true", probs.shape[1])
    if y_true.shape[0] != probs.shape[0]:
        raise InputError(
            f"expected as many labels as rows of probs ({probs.shape[0]}), got {y_true.shape[0]}"
        )
    return y_true, probs


def _sample_losses(y_true: np.ndarray, probs: np.ndarray, eps: float = _EPS) -> np.ndarray:
    """Negative log-likelihood of the true class per sample, shape (N,)."""
    p_true = probs[np.arange(len(y_true)), y_true]
    return -np.log(np.clip(p_true, eps, 1.0))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Count (true, predicted) pairs.

    Args:
        y_true: True class indices, shape (N,).
        y_pred: Predicted class indices, shape (N,).
        n_classes: Number of classes C; every class gets a row and a column, seen or not.

    Returns:
        Integer array of shape (C, C): rows are true classes, columns predicted classes.

    Raises:
        ValueError: If the shapes differ or a label is outside [0, C).
    """
    if int(n_classes) != n_classes or n_classes < 1:
        raise InputError(f"expected n_classes >= 1, got {n_classes}")
    n_classes = int(n_classes)
    y_true = _check_labels(y_true, "y_true", n_classes)
    y_pred = _check_labels(y_pred, "y_pred", n_classes)
    if y_true.shape != y_pred.shape:
        raise InputError(
            f"expected y_pred with the shape of y_true {y_true.shape}, got {y_pred.shape}"
        )
    # One bincount over flattened (true, pred) cell indices instead of a Python loop.
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)  # (C, C)


def top_losses(y_true: np.ndarray, probs: np.ndarray, k: int) -> np.ndarray:
    """Indices of the samples with the highest loss -log p(true class).

    Args:
        y_true: True class indices, shape (N,).
        probs: Softmax probabilities, shape (N, C).
        k: How many indices to return; fewer come back when N < k.

    Returns:
        Integer array of shape (min(k, N),), highest loss first (the most confidently
        wrong predictions); ties keep the original order.

    Raises:
        ValueError: If the shapes disagree or k is negative.
    """
    if k < 0:
        raise InputError(f"expected k >= 0, got {k}")
    y_true, probs = _check_probs(y_true, probs)
    losses = _sample_losses(y_true, probs, eps=_TINY)
    return np.argsort(-losses, kind="stable")[:k].astype(np.int64)


def _per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support per class; 0.0 where undefined (zero_division=0)."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support


def _most_confused(cm: np.ndarray, classes: Sequence[str]) -> list[dict]:
    pairs = [
        (int(cm[t, p]), classes[t], classes[p])
        for t, p in zip(*np.nonzero(cm))
        if t != p
    ]
    pairs.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [
        {"true": t, "predicted": p, "count": n} for n, t, p in pairs[:_MAX_MOST_CONFUSED]
    ]


def _species_accuracy(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], species: Mapping[str, str]
) -> float:
    missing = [c for c in classes if c not in species]
    if missing:
        raise InputError(f"expected a species for every class, got none for {missing}")
    species_of = np.array([species[c] for c in classes], dtype=object)
    return float(np.mean(species_of[y_true] == species_of[y_pred]))


def classification_report(
    y_true: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    species: Mapping[str, str] | None = None,
) -> dict:
    """Summarise a classifier's predictions in a JSON-serialisable dict.

    Predictions are the argmax of ``probs``. Keys: ``n``, ``accuracy``, ``balanced_accuracy``
    (mean recall over the classes present in ``y_true``), ``top5_accuracy`` (only when C >= 5),
    ``log_loss`` (mean -log p(true), probabilities clipped to [eps, 1]), ``per_class`` (one
    ``{"class", "precision", "recall", "f1", "support"}`` per class, 0.0 where undefined),
    ``macro_f1`` (mean F1 over the classes present in ``y_true`` or predicted, as in
    scikit-learn), ``confusion_matrix`` (rows true, columns predicted), ``most_confused``
    (up to 10 ``{"true", "predicted", "count"}``, largest count first), and
    ``species_accuracy`` when ``species`` is given.

    Args:
        y_true: True class indices, shape (N,), N >= 1.
        probs: Softmax probabilities, shape (N, C).
        classes: The C class names, in index order.
        species: Optional map from class name to species (e.g. ``{"Abyssinian": "cat"}``);
            accuracy is then also measured after mapping true and predicted classes to species.

    Returns:
        A dict of plain floats, ints, strings and lists.

    Raises:
        ValueError: If shapes or class names disagree, or a class has no species.
    """
    y_true, probs = _check_probs(y_true, probs)
    classes = [str(c) for c in classes]
    if len(classes) != probs.shape[1]:
        raise InputError(f"expected {probs.shape[1]} class names (probs columns), got {len(classes)}")
    if len(y_true) == 0:
        raise InputError("expected at least one sample, got 0")
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, len(classes))
    precision, recall, f1, support = _per_class(cm)
    report: dict = {
        "n": len(y_true),
        "accuracy": float(np.mean(y_pred == y_true)),
        "balanced_accuracy": float(np.mean(recall[support > 0])),
    }
    if len(classes) >= 5:
        report["top5_accuracy"] = _top5_accuracy(y_true, probs)
    report["log_loss"] = float(np.mean(_sample_losses(y_true, probs)))
    report["per_class"] = [
        {"class": name, "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, name in enumerate(classes)
    ]
    report["macro_f1"] = float(np.mean(f1[(support > 0) | (cm.sum(axis=0) > 0)]))  # classes present in y_true or predicted
    report["confusion_matrix"] = cm.tolist()
    report["most_confused"] = _most_confused(cm, classes)
    if species is not None:
        report["species_accuracy"] = _species_accuracy(y_true, y_pred, classes, species)
    return report


def _top5_accuracy(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Share of samples whose true class is among the 5 most probable. Shape: y_true (N,), probs (N, C)."""
    # Stable sort on -p: among equal probabilities the lower class index ranks first.
    top5 = np.argsort(-probs, axis=1, kind="stable")[:, :5]  # (N, 5)
    return float(np.mean(np.any(top5 == y_true[:, None], axis=1)))
