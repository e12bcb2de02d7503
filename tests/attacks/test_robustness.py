"""Robustness over a dataset: the CSV a user plots, a curve that can only go down, the targeted matrix."""

import csv
import math

import numpy as np
import pytest
import torch

import transferlab as tl
from transferlab.attacks.robustness import CURVE_COLUMNS, robustness

from .conftest import grid_images, tiny_classifier, with_threshold


def test_curve_csv_columns_and_monotone_accuracy(tiny_run, pet_photos, tmp_path) -> None:
    ds = tl.load_dataset(pet_photos, val_frac=0.2, test_frac=0.3)
    result = tl.robustness(tiny_run, ds, [0, 2 / 255, 1 / 255, 16 / 255], tl.AttackConfig(steps=10), split="all", out=tmp_path)
    with open(tmp_path / "robustness.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CURVE_COLUMNS
    assert [float(r["eps_255"]) for r in rows] == [0, 1, 2, 16]  # sorted
    acc = [float(r["robust_accuracy"]) for r in rows]
    assert acc[0] == float(rows[0]["clean_accuracy"]) and all(a >= b for a, b in zip(acc, acc[1:]))
    assert acc[-1] < acc[0] and int(rows[0]["n"]) == 18
    assert (tmp_path / "robustness.png").is_file() and result.matrix is None


def test_targeted_success_matrix() -> None:
    model = tiny_classifier()
    images = grid_images(6)
    with torch.no_grad():
        labels = model(images).argmax(1).tolist()  # all correct: every image is a source
    result = robustness(model, list(images), labels, [0, 1 / 255, 32 / 255], tl.AttackConfig(steps=10, random_start=False), targeted=True, targets=[0, 1, 2])
    m = result.matrix
    assert m.classes == ["cat", "dog", "fox"] and m.eps == [1 / 255, 32 / 255]
    assert m.success.shape == (2, 3, 3) and np.isnan(m.success[:, [0, 1, 2], [0, 1, 2]]).all()
    sources = [s for s in range(3) if m.n[s]]
    for s in sources:
        for t in range(3):
            if s != t:
                assert m.success[0, s, t] <= m.success[1, s, t]  # a bigger budget never does worse
                assert np.isnan(m.median_eps[s, t]) or m.median_eps[s, t] in m.eps
    rows = m.rows()
    assert set(rows[0]) == {"source", "target", "n", "success_at_1/255", "success_at_32/255", "median_min_eps", "median_min_eps_255"}
    assert len(rows) == 6


def test_targeted_robustness_writes_the_matrix(tiny_run, pet_photos, tmp_path) -> None:
    ds = tl.load_dataset(pet_photos, val_frac=0.2, test_frac=0.3)
    tl.robustness(tiny_run, ds, [0, 16 / 255], tl.AttackConfig(steps=5), targeted=True, limit=2, out=tmp_path)
    with open(tmp_path / "success_matrix.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["source"] for r in rows} <= {"cat", "dog", "fox"}
    assert (tmp_path / "success_matrix.png").is_file()


def test_photos_of_different_sizes_are_attacked_at_their_own_size() -> None:
    # robustness attacks whole photos through the evaluation crop and resize: batches hold one size each
    from transferlab.attacks.robustness import _predict, robustness
    from transferlab.models.photo import PhotoClassifier

    from .conftest import tiny_classifier

    net = PhotoClassifier(tiny_classifier())
    sizes = [(40, 48), (36, 36), (40, 48), (50, 30), (36, 36)]
    photos = [torch.rand(3, h, w).mul(255).round().div(255) for h, w in sizes]
    expected = torch.stack([net(p[None]).argmax(1)[0] for p in photos])
    assert torch.equal(_predict(net, photos, batch_size=8), expected)  # order kept across size groups
    result = robustness(net, photos, expected.tolist(), [0, 8 / 255], tl.AttackConfig(steps=3), batch_size=8)
    assert result.curve[0]["robust_accuracy"] == 1.0 and result.curve[1]["attacked"] == len(photos)


@pytest.mark.parametrize("threshold", [math.inf, -math.inf, None])
def test_the_curve_says_how_many_fooled_images_predict_rejects(tiny_run, pet_photos, threshold) -> None:
    run = with_threshold(tiny_run, threshold)
    ds = tl.load_dataset(pet_photos, val_frac=0.2, test_frac=0.3)
    curve = tl.robustness(run, ds, [0, 16 / 255], tl.AttackConfig(steps=10), split="all").curve
    assert curve[0]["fooled_flagged_rate"] == ""  # nothing fooled at ε = 0
    assert curve[1]["robust_accuracy"] < curve[0]["robust_accuracy"]  # some were fooled at 16/255
    assert curve[1]["fooled_flagged_rate"] == {math.inf: 1.0, -math.inf: 0.0, None: ""}[threshold]  # None: the run rejects nothing
