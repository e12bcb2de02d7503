"""Metrics checked against scikit-learn on random data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from transferlab.evaluate import classification_report, confusion_matrix, top_losses

SEEDS = [0, 1, 2, 3, 4]


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _random_case(seed: int, n: int = 60, n_classes: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities where the last class never occurs in y_true and class 0 is
    never predicted, so undefined precision/recall paths are exercised."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, n_classes - 1, size=n)  # class C-1 absent from y_true
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), y_true] += 1.5  # better than chance, still many mistakes
    logits[:, 0] -= 100.0  # class 0 never predicted
    logits[: n // 4, n_classes - 1] += 100.0  # ...but the absent class sometimes is
    return y_true, _softmax(logits)


def _names(n_classes: int) -> list[str]:
    return [f"class_{i}" for i in range(n_classes)]


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_matches_sklearn(seed: int) -> None:
    y_true, probs = _random_case(seed)
    y_pred = probs.argmax(axis=1)
    c = probs.shape[1]
    expected = skm.confusion_matrix(y_true, y_pred, labels=range(c))
    got = confusion_matrix(y_true, y_pred, c)
    assert got.shape == (c, c)
    assert np.issubdtype(got.dtype, np.integer)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_report_matches_sklearn(seed: int) -> None:
    y_true, probs = _random_case(seed)
    c = probs.shape[1]
    labels = list(range(c))
    y_pred = probs.argmax(axis=1)
    # The fixture must really contain the edge cases it claims to.
    assert 0 not in set(y_pred) and c - 1 not in set(y_true) and c - 1 in set(y_pred)

    report = classification_report(y_true, probs, _names(c))

    assert report["n"] == len(y_true)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        balanced = skm.balanced_accuracy_score(y_true, y_pred)
    assert report["balanced_accuracy"] == pytest.approx(balanced)
    assert report["top5_accuracy"] == pytest.approx(
        skm.top_k_accuracy_score(y_true, probs, k=5, labels=labels)
    )
    assert report["log_loss"] == pytest.approx(skm.log_loss(y_true, probs, labels=labels))

    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = report["per_class"]
    assert [row["class"] for row in per_class] == _names(c)
    np.testing.assert_allclose([row["precision"] for row in per_class], precision)
    np.testing.assert_allclose([row["recall"] for row in per_class], recall)
    np.testing.assert_allclose([row["f1"] for row in per_class], f1)
    assert [row["support"] for row in per_class] == support.tolist()
    assert per_class[0]["precision"] == 0.0  # never predicted
    assert report["macro_f1"] == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    assert report["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()


def test_report_is_json_serialisable() -> None:
    y_true, probs = _random_case(0)
    names = _names(probs.shape[1])
    species = {name: ("cat" if i % 2 else "dog") for i, name in enumerate(names)}
    report = classification_report(y_true, probs, names, species=species)
    assert json.loads(json.dumps(report)) == report


def test_top5_absent_below_five_classes() -> None:
    y_true, probs = _random_case(0, n_classes=4)
    assert "top5_accuracy" not in classification_report(y_true, probs, _names(4))


def test_most_confused_sorted_and_capped() -> None:
    y_true, probs = _random_case(1, n=300, n_classes=12)
    names = _names(12)
    report = classification_report(y_true, probs, names)
    cm = np.array(report["confusion_matrix"])
    off_diagonal = sorted(
        (-int(cm[t, p]), names[t], names[p])
        for t in range(12)
        for p in range(12)
        if t != p and cm[t, p] > 0
    )
    expected = [{"true": t, "predicted": p, "count": -n} for n, t, p in off_diagonal[:10]]
    assert len(off_diagonal) > 10  # the cap is exercised
    assert report["most_confused"] == expected


def test_most_confused_ties_broken_by_name() -> None:
    y_true = np.array([0, 1, 2, 2])
    probs = np.eye(3)[[2, 2, 0, 1]]  # four different mistakes, one each
    report = classification_report(y_true, probs, ["b", "a", "c"])
    pairs = [(m["true"], m["predicted"]) for m in report["most_confused"]]
    assert pairs == [("a", "c"), ("b", "c"), ("c", "a"), ("c", "b")]


def test_species_accuracy_counts_within_species_mistakes_as_right() -> None:
    classes = ["Abyssinian", "Bengal", "american_bulldog", "beagle"]
    species = {"Abyssinian": "cat", "Bengal": "cat", "american_bulldog": "dog", "beagle": "dog"}
    y_true = np.array([0, 1, 2, 3])
    probs = np.eye(4)[[1, 1, 3, 0]]  # cat->cat (wrong breed), right, dog->dog, dog->cat
    report = classification_report(y_true, probs, classes, species=species)
    assert report["accuracy"] == pytest.approx(0.25)
    assert report["species_accuracy"] == pytest.approx(0.75)
    assert "species_accuracy" not in classification_report(y_true, probs, classes)


def test_species_missing_class_raises() -> None:
    with pytest.raises(ValueError, match="species for every class"):
        classification_report(np.array([0]), np.array([[0.6, 0.4]]), ["a", "b"], {"a": "cat"})


def test_log_loss_is_finite_for_zero_probability() -> None:
    report = classification_report(np.array([0, 1]), np.array([[0.0, 1.0], [0.0, 1.0]]), ["a", "b"])
    assert np.isfinite(report["log_loss"]) and report["log_loss"] > 10


@pytest.mark.parametrize("seed", SEEDS)
def test_top_losses_orders_by_true_class_loss(seed: int) -> None:
    y_true, probs = _random_case(seed)
    # Regression: the fixture holds true-class probabilities far below float eps; clipping them
    # at eps made the worst samples tie and come back in index order.
    idx = top_losses(y_true, probs, k=8)
    assert idx.shape == (8,)
    losses = -np.log(probs[np.arange(len(y_true)), y_true])
    np.testing.assert_allclose(losses[idx], np.sort(losses)[::-1][:8])
    # The worst sample is a confident mistake.
    assert probs[idx[0]].argmax() != y_true[idx[0]]


def test_top_losses_k_larger_than_n() -> None:
    idx = top_losses(np.array([0, 1]), np.array([[0.9, 0.1], [0.8, 0.2]]), k=5)
    assert idx.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("y_true", "probs", "match"),
    [
        (np.array([0, 1]), np.ones((3, 2)) / 2, "expected as many labels"),
        (np.array([[0, 1]]), np.ones((2, 2)) / 2, r"expected y_true of shape \(N,\)"),
        (np.array([0, 1]), np.ones(2) / 2, r"expected probs of shape \(N, C\)"),
        (np.array([0, 2]), np.ones((2, 2)) / 2, r"expected y_true in \[0, 1\]"),
        (np.array([0.0, 1.0]), np.ones((2, 2)) / 2, "expected integer class indices"),
        (np.array([], dtype=int), np.ones((0, 2)), "expected at least one sample"),
    ],
)
def test_report_validates_inputs(y_true: np.ndarray, probs: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        classification_report(y_true, probs, ["a", "b"])


def test_report_validates_class_names() -> None:
    with pytest.raises(ValueError, match="expected 2 class names"):
        classification_report(np.array([0, 1]), np.ones((2, 2)) / 2, ["a", "b", "c"])


def test_confusion_matrix_validates_inputs() -> None:
    with pytest.raises(ValueError, match="expected y_pred with the shape"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 2)
    with pytest.raises(ValueError, match=r"expected y_pred in \[0, 1\]"):
        confusion_matrix(np.array([0, 1]), np.array([0, 5]), 2)
    with pytest.raises(ValueError, match="expected n_classes >= 1"):
        confusion_matrix(np.array([0]), np.array([0]), 0)
