"""Linear (softmax) head on frozen features: multinomial logistic regression with L2, fitted by
full-batch L-BFGS, its strength chosen on a validation split carved from the training data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ProbeConfig:
    """How the head is fitted; the defaults work for photos in general."""

    l2_grid: tuple[float, ...] = (1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)  # penalty per sample on standardised features, strongest first
    max_iter: int = 100  # L-BFGS iterations per fit
    val_frac: float = 0.2  # share of training images held out to pick the L2 strength when the data has no val split


@dataclass
class ProbeResult:
    weight: torch.Tensor  # (C, D) on raw (unstandardised) features
    bias: torch.Tensor  # (C,)
    l2: float  # chosen strength
    val_scores: list[dict[str, float]] = field(default_factory=list)  # per grid value: l2, accuracy, log_loss


def _fit(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float, max_iter: int, init: torch.Tensor | None) -> torch.Tensor:
    """Minimise mean cross-entropy + l2/2 * |W|^2 (bias unpenalised); returns (D + 1, C) parameters."""
    n, d = x.shape
    xb = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)  # (N, D + 1): bias as a last column
    theta = (init.clone() if init is not None else torch.zeros(d + 1, n_classes, dtype=x.dtype)).requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe", tolerance_grad=1e-6)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xb @ theta, y) + 0.5 * l2 * theta[:-1].pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return theta.detach()


def _scores(x: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> tuple[float, float]:
    logits = x @ theta[:-1] + theta[-1]
    return (logits.argmax(1) == y).double().mean().item(), F.cross_entropy(logits, y).item()


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


def fit_probe(
    x_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray,
    n_classes: int,
    x_val: np.ndarray | torch.Tensor | None = None,
    y_val: np.ndarray | None = None,
    config: ProbeConfig = ProbeConfig(),
    seed: int = 0,
    refit: bool = True,
) -> ProbeResult:
    """Fit the head; pick L2 on (x_val, y_val), or on a stratified holdout of the training data.

    With ``refit`` the chosen strength is refitted on train + val (fine-tuning turns it off: its
    validation images must stay unseen). Features are standardised for conditioning and the
    scaling folded back into the returned weights, so the head applies to raw features. Deterministic.

    Shape:
        x_train (N, D), y_train (N,) ints in [0, n_classes); returns weight (C, D), bias (C,).
    """
    x_all = torch.as_tensor(np.asarray(x_train), dtype=torch.float64)
    y_all = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
    if x_val is None or y_val is None or len(y_val) == 0:
        tr, va = stratified_holdout(y_all.numpy(), config.val_frac, seed)
        x_tr, y_tr, x_va, y_va = x_all[tr], y_all[tr], x_all[va], y_all[va]
    else:
        x_tr, y_tr = x_all, y_all
        x_va = torch.as_tensor(np.asarray(x_val), dtype=torch.float64)
        y_va = torch.as_tensor(np.asarray(y_val), dtype=torch.long)
        x_all, y_all = torch.cat([x_tr, x_va]), torch.cat([y_tr, y_va])
    basis = x_all if refit else x_tr
    mean, std = basis.mean(0), basis.std(0).clamp_min(1e-6)
    z = lambda x: (x - mean) / std  # noqa: E731

    scores, theta, best = [], None, None
    for l2 in config.l2_grid:  # strongest first, each fit warm-started from the previous
        theta = _fit(z(x_tr), y_tr, n_classes, l2, config.max_iter, theta)
        acc, loss = _scores(z(x_va), y_va, theta) if len(y_va) else (0.0, 0.0)
        scores.append({"l2": l2, "accuracy": acc, "log_loss": loss})
        if best is None or (acc, -loss) > (best[1], -best[2]):
            best = (l2, acc, loss, theta)
    assert best is not None
    theta = _fit(z(x_all), y_all, n_classes, best[0], config.max_iter, best[3]) if refit else best[3]
    weight = (theta[:-1] / std[:, None]).T  # fold the standardisation into the head
    bias = theta[-1] - (mean / std) @ theta[:-1]
    return ProbeResult(weight.float().contiguous(), bias.float().contiguous(), best[0], scores)
