"""Calibration and out-of-distribution metrics, the temperature fit and the in-distribution scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab.evaluate.calibration import acceptance_threshold, auroc, expected_calibration_error, fpr_at, log_loss, plot_reliability, plot_score_histogram
from transferlab.models.confidence import Confidence
from transferlab.train.calibrate import fit_confidence, fit_temperature, score_tensors


def overconfident(n: int = 4000, c: int = 5, sharpen: float = 4.0, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Labels drawn from softmax(z): z is calibrated by construction, z * sharpen is overconfident."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, c))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(c, p=row) for row in p])
    return torch.as_tensor(z * sharpen), y


def test_temperature_scaling_lowers_log_loss_and_ece_of_an_overconfident_model() -> None:
    logits, y = overconfident()
    t = fit_temperature(logits, y)
    raw, scaled = torch.softmax(logits, 1).numpy(), torch.softmax(logits / t, 1).numpy()
    assert t == pytest.approx(4.0, rel=0.1)  # it undoes the sharpening
    assert log_loss(y, scaled) < log_loss(y, raw) - 0.1
    assert expected_calibration_error(y, scaled) < 0.03 < expected_calibration_error(y, raw)


def test_temperature_leaves_a_calibrated_model_alone_and_keeps_every_argmax() -> None:
    logits, y = overconfident(sharpen=1.0)
    t = fit_temperature(logits, y)
    assert t == pytest.approx(1.0, abs=0.1)
    assert (torch.softmax(logits / t, 1).argmax(1) == logits.argmax(1)).all()


def test_ece_by_hand() -> None:
    # two images at confidence 0.9 (one right), two at 0.6 (both right): |0.5 - 0.9| / 2 + |1 - 0.6| / 2
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(y, probs) == pytest.approx(0.4)


def test_auroc_and_fpr95_match_scikit_learn() -> None:
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(1)
    inside, outside = rng.normal(1, 1, 300).round(1), rng.normal(0, 1, 200).round(1)  # rounded: ties too
    labels = np.r_[np.ones(300), np.zeros(200)]
    assert auroc(inside, outside) == pytest.approx(roc_auc_score(labels, np.r_[inside, outside]))
    fpr, tpr, _ = roc_curve(labels, np.r_[inside, outside])
    assert fpr_at(inside, outside, 0.95) == pytest.approx(fpr[np.argmax(tpr >= 0.95)])


@pytest.mark.parametrize("accept", [0.5, 0.9, 0.95, 0.99, 1.0])
def test_the_threshold_accepts_the_stated_share(accept: float) -> None:
    scores = np.random.default_rng(2).normal(size=137)
    t = acceptance_threshold(scores, accept)
    share = np.mean(scores >= t)
    assert accept <= share < accept + 1 / 137 + 1e-9  # at least the stated share, and no more than one image over


def test_knn_and_mahalanobis_score_far_images_lower_and_no_threshold_rejects_nothing() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 3, (3, 16))
    y = np.repeat(np.arange(3), 40)
    x = torch.as_tensor(centres[y] + rng.normal(0, 1, (120, 16)))
    near, far = torch.as_tensor(centres[[0, 1]] + 0.1), torch.as_tensor(rng.normal(0, 1, (2, 16)) + 30)
    for method in ("knn", "mahalanobis"):
        conf = Confidence(method=method, threshold=0.0, tensors=score_tensors(method, x, y, 3))
        s = conf.score(torch.cat([near, far]).float(), torch.zeros(4, 3))
        assert s[:2].min() > s[2:].max(), method
    assert Confidence().accepted(torch.tensor([-1e9, 0.0])).all()


def test_energy_score_is_t_logsumexp_of_logits_over_t_by_hand() -> None:
    import math

    logits = [[2.0, -1.0, 0.5], [-3.0, -3.0, -3.0], [10.0, 0.0, 0.0]]
    for t in (1.0, 2.5):
        want = [t * math.log(sum(math.exp(v / t) for v in row)) for row in logits]  # T·log Σ exp(l / T) (Liu et al. 2020)
        got = Confidence(temperature=t, method="energy").score(torch.zeros(3, 4), torch.tensor(logits))
        assert got.tolist() == pytest.approx(want, rel=1e-6), t
    # what makes it an in-distribution score: a confident, large logit scores high; flat, low logits score low
    assert got[2] > got[0] > got[1]
    assert Confidence(method="energy").score(torch.zeros(1, 4), torch.tensor([[1e4, 0.0]])).item() == pytest.approx(1e4)  # no overflow


def test_fit_confidence_threshold_accepts_the_share_of_choosing_images_and_round_trips() -> None:
    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(2), 50)
    x = torch.as_tensor(rng.normal(0, 1, (100, 8)) + y[:, None] * 4)
    logits = torch.stack([-x[:, 0], x[:, 0]], 1)
    conf = fit_confidence(x[:60], y[:60], x[60:], logits[60:], y[60:], method="knn", accept=0.9, k=3)
    assert conf.accepted(conf.score(x[60:], logits[60:])).float().mean() >= 0.9
    again = Confidence.from_record(conf.to_record(), conf.tensors)
    assert torch.equal(again.score(x, logits), conf.score(x, logits)) and again.threshold == conf.threshold


def test_figures_draw() -> None:
    logits, y = overconfident(n=200)
    fig = plot_reliability(y, torch.softmax(logits, 1).numpy(), torch.softmax(logits / 4, 1).numpy())
    assert len(fig.axes) == 2 and "ECE" in fig.axes[0].get_title()
    fig = plot_score_histogram(np.ones(5), np.zeros(5), 0.5, "knn")
    assert fig.axes[0].get_legend() is not None
