"""Fit a run's ``Confidence``: the softmax temperature and the "none of these" threshold.

Everything here is fitted on the images used for choosing (val, or a holdout carved from train),
never on the reported split. Their logits must come from a head that did not learn from them: when
the run's own head did (the probe refits on train + val), a stand-in head is fitted on the fitting
images alone with the same L2 strength (``stand_in_logits``), and its temperature is the run's.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluate.calibration import acceptance_threshold
from ..models.confidence import DEFAULT_ACCEPT, DEFAULT_METHOD, METHODS, Confidence
from .config import ProbeConfig
from .probe import fit_probe

MAX_BANK = 2048  # knn: training images kept (2048 x 1280 fp16 = 5.2 MB for EfficientNet-Lite0)
KNN_K = 1  # the nearest image: best of k in 1, 3, 5, 10, 20, 50 on the selection splits (BENCHMARKS.md); banks here are small
SHRINK = 0.1  # mahalanobis: covariance pulled this far towards its mean variance (fewer images than dimensions)


def fit_temperature(logits: torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    """The T > 0 minimising the log-loss of softmax(logits / T) on labelled images (Guo et al. 2017).

    Shape:
        logits (N, C), labels (N,).
    """
    z = torch.as_tensor(logits).double()
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().clamp(-5.0, 5.0).exp())


def stand_in_logits(fit_x: torch.Tensor, fit_y: np.ndarray, choose_x: torch.Tensor, choose_y: np.ndarray, n_classes: int, l2: float, seed: int = 0,
                    start: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Logits on the choosing images of a probe fitted on the fitting images alone, at strength ``l2``; ``start``
    (the run's head, which also saw the choosing images) is where the fit starts: the same optimum, fewer steps.

    Shape:
        fit_x (N, D), fit_y (N,), choose_x (M, D), choose_y (M,); returns (M, C).
    """
    head = fit_probe(fit_x, fit_y, n_classes, choose_x, choose_y, ProbeConfig(l2_grid=(l2,)), seed, refit=False, start=start)  # fitted on fit_x only
    return F.linear(choose_x.float(), head.weight, head.bias)


def fit_confidence(
    fit_x: torch.Tensor,
    fit_y: np.ndarray,
    choose_x: torch.Tensor,
    choose_logits: torch.Tensor,
    choose_y: np.ndarray,
    *,
    method: str = DEFAULT_METHOD,
    accept: float = DEFAULT_ACCEPT,
    k: int = KNN_K,
    max_bank: int = MAX_BANK,
    seed: int = 0,
    fitted_on: str = "",
) -> Confidence:
    """Temperature from the choosing images' logits, the score's statistics from the fitting images'
    features, and the threshold that accepts ``accept`` of the choosing images.

    Shape:
        fit_x (N, D) features, fit_y (N,); choose_x (M, D), choose_logits (M, C), choose_y (M,).
    """
    if method not in METHODS:
        raise ValueError(f"expected a score in {METHODS}, got {method!r}")
    conf = Confidence(temperature=fit_temperature(choose_logits, choose_y), method=method, accept=accept, k=k, fitted_on=fitted_on)
    conf.tensors = score_tensors(method, fit_x, np.asarray(fit_y), int(choose_logits.shape[1]), max_bank, seed)
    conf.threshold = acceptance_threshold(conf.score(choose_x, choose_logits).numpy(), accept)
    return conf


def score_tensors(method: str, x: torch.Tensor, y: np.ndarray, n_classes: int, max_bank: int = MAX_BANK, seed: int = 0) -> dict[str, torch.Tensor]:
    """What ``method`` keeps of the fitting images: a bank of unit-length features (knn), class means
    and a shrunk shared precision matrix (mahalanobis), nothing (msp, energy)."""
    x = x.double()
    if method == "knn":
        keep = np.arange(len(x)) if len(x) <= max_bank else np.sort(np.random.default_rng(seed).choice(len(x), max_bank, replace=False))
        return {"bank": F.normalize(x[keep], dim=1).half().contiguous()}
    if method == "mahalanobis":
        means = torch.stack([x[torch.as_tensor(y == c)].mean(0) if (y == c).any() else x.mean(0) for c in range(n_classes)])  # (C, D)
        centred = x - means[torch.as_tensor(y)]
        cov = centred.T @ centred / len(x)  # (D, D) shared within-class covariance
        cov = (1 - SHRINK) * cov + SHRINK * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype)
        return {"means": means.float().contiguous(), "precision": torch.linalg.inv(cov).float().contiguous()}
    return {}
