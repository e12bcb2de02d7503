"""The probe's extra rows (views of training photos): a view fits only where its photo fits and never judges.

A leak would show as memorisation: with labels that carry no signal and views that are exact copies of their
photos, a head that saw a judged photo's copy scores it right at weak L2, far above chance.
"""

import numpy as np
import pytest
import torch

from transferlab.train import ProbeConfig, fit_probe
from transferlab.train.probe import _choice_splits, _with_views


def _noise(n: int, d: int, c: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, c, n)


@pytest.mark.parametrize("folds", [1, 5])
def test_views_of_a_judged_photo_never_fit_its_l2_choice(folds: int) -> None:
    x, y = _noise(200, 256, 4, seed=0)
    config = ProbeConfig(folds=folds, l2_grid=(1e-4, 1e-5))  # weak enough to memorise whatever it fits
    copies = np.tile(np.arange(len(y)), 2)  # two "views" of each photo: exact copies
    fit = fit_probe(x, y, 4, config=config, x_extra=x[copies], extra_of=copies)
    assert max(s["accuracy"] for s in fit.val_scores) < 0.5  # chance is 0.25; a leak would score ~1.0
    assert fit.judged == len(y) // (5 if folds == 1 else 1)  # the photos judge, their views never


def test_leak_check_can_fail() -> None:
    """The same data with the copies given as photos (what a per-row split would do) scores far above chance."""
    x, y = _noise(200, 256, 4, seed=0)
    config = ProbeConfig(folds=5, l2_grid=(1e-4, 1e-5))
    fit = fit_probe(np.concatenate([x, x]), np.concatenate([y, y]), 4, config=config)
    assert max(s["accuracy"] for s in fit.val_scores) > 0.5


@pytest.mark.parametrize("folds", [1, 5])
def test_each_split_fits_exactly_the_views_of_its_fitting_photos(folds: int) -> None:
    x, y = _noise(60, 8, 3, seed=1)
    extra_of = np.array([5, 7, 7, 30, 59])
    splits, _ = _choice_splits(y, ProbeConfig(folds=folds), seed=0)
    _, y_all, joined = _with_views(torch.as_tensor(x), torch.as_tensor(y), torch.zeros(5, 8), extra_of, splits)
    for (tr, va), (fit_rows, judge_rows) in zip(splits, joined):
        views = fit_rows[fit_rows >= len(y)] - len(y)
        assert set(extra_of[views]) == set(extra_of) & set(tr)
        assert np.array_equal(judge_rows, va) and not set(extra_of[views]) & set(va)
    assert y_all[len(y):].tolist() == y[extra_of].tolist()  # a view is labelled as its photo


def test_views_of_validation_photos_join_only_the_refit() -> None:
    x, y = _noise(90, 16, 3, seed=2)
    splits = [(np.arange(60), np.arange(60, 90))]
    extra_of = np.array([0, 65])  # one view of a training photo, one of a validation photo
    _, _, joined = _with_views(torch.as_tensor(x), torch.as_tensor(y), torch.zeros(2, 16), extra_of, splits)
    assert joined[0][0].tolist() == [*range(60), 90]  # the training photo's view fits; the validation one's waits for the refit
    fit = fit_probe(x[:60], y[:60], 3, x[60:], y[60:], x_extra=x[extra_of], extra_of=extra_of)
    assert fit.chosen_on == "val" and fit.judged == 30


def test_extra_of_outside_the_photos_is_refused() -> None:
    x, y = _noise(30, 4, 3, seed=3)
    with pytest.raises(ValueError, match="extra_of"):
        fit_probe(x, y, 3, x_extra=x[:1], extra_of=np.array([30]))
