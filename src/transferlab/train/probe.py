"""Linear (softmax) head on frozen features: multinomial logistic regression with L2, fitted by
full-batch L-BFGS, its strength chosen on a validation split carved from the training data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data.roles import stratified_folds, stratified_holdout
from .config import ProbeConfig


@dataclass
class ProbeResult:
    weight: torch.Tensor  # (C, D) on raw (unstandardised) features
    bias: torch.Tensor  # (C,)
    l2: float  # chosen strength
    val_scores: list[dict[str, float]] = field(default_factory=list)  # per grid value tried (strongest first): l2, accuracy, log_loss (means over folds, with accuracy_sd)
    chosen_on: str = "val"  # "val" (the given validation images), "holdout" or "5-fold" (of the training images)
    judged: int = 0  # how many images the choice was judged on (all folds together)


def _fit(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float, max_iter: int, init: torch.Tensor | None, tolerance: float = 1e-9) -> torch.Tensor:
    """Minimise mean cross-entropy + l2/2 * |W|^2 (bias unpenalised) until a step changes the loss by less than
    ``tolerance`` (or ``max_iter`` steps); returns (D + 1, C) parameters."""
    n, d = x.shape
    xb = torch.cat([x, torch.ones(n, 1, dtype=x.dtype)], dim=1)  # (N, D + 1): bias as a last column
    theta = (init.clone() if init is not None else torch.zeros(d + 1, n_classes, dtype=x.dtype)).requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=tolerance)

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


def fit_probe(
    x_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray,
    n_classes: int,
    x_val: np.ndarray | torch.Tensor | None = None,
    y_val: np.ndarray | None = None,
    config: ProbeConfig = ProbeConfig(),
    seed: int = 0,
    refit: bool = True,
    dtype: torch.dtype = torch.float32,
    x_extra: np.ndarray | torch.Tensor | None = None,
    extra_of: np.ndarray | None = None,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> ProbeResult:
    """Fit the head; pick L2 on (x_val, y_val), else by k-fold (or one holdout) of the training data.

    With ``refit`` the chosen strength is refitted on train + val (fine-tuning turns it off: its
    validation images must stay unseen). Features are standardised for conditioning and the
    scaling folded back into the returned weights, so the head applies to raw features. Deterministic.
    ``dtype`` is the precision of the returned fit (float32, or float64 where the last digits matter); the search
    over L2 always runs in float32, where a step takes half the time, and where enough images judge
    (``ProbeConfig.fast_from``) to a looser tolerance, stopping early (``patience``).

    ``x_extra`` are more rows for fitting, each a view (``features.views``) of the photo whose row in
    ``x_train`` + ``x_val`` ``extra_of`` gives, with its label: a view fits only where its photo fits, and
    never judges, so no photo is on both sides of the L2 choice.

    ``start`` (weight (C, D), bias (C,) on raw features) is a head every fit starts from instead of zeros: a head
    fitted on nearly the same rows (the run's, for a stand-in without its choosing images) takes a few steps.

    Shape:
        x_train (N, D), y_train (N,) ints in [0, n_classes); x_extra (M, D), extra_of (M,) ints in
        [0, N + N_val); returns weight (C, D), bias (C,).
    """
    x_tr = torch.as_tensor(np.asarray(x_train), dtype=dtype)
    y_tr = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
    if x_val is not None and y_val is not None and len(y_val):
        x_va = torch.as_tensor(np.asarray(x_val), dtype=dtype)
        y_va = torch.as_tensor(np.asarray(y_val), dtype=torch.long)
        splits, chosen_on = [(np.arange(len(y_tr)), np.arange(len(y_tr), len(y_tr) + len(y_va)))], "val"
        x_all, y_all = torch.cat([x_tr, x_va]), torch.cat([y_tr, y_va])
    else:
        x_all, y_all = x_tr, y_tr
        splits, chosen_on = _choice_splits(y_all.numpy(), config, seed)
    if x_extra is not None and extra_of is not None and len(extra_of):
        x_all, y_all, splits = _with_views(x_all, y_all, torch.as_tensor(np.asarray(x_extra), dtype=dtype), np.asarray(extra_of), splits)
    fit_rows = np.concatenate([tr for tr, _ in splits]) if not refit else None
    basis = x_all if refit else x_all[np.unique(fit_rows)]
    mean, std = basis.mean(0), basis.std(0).clamp_min(1e-6)
    z = (x_all - mean) / std
    init = None if start is None else torch.cat([(start[0].to(dtype) * std).T, (start[1].to(dtype) + start[0].to(dtype) @ mean)[None]])
    per_l2, best, best_theta = _path(z.float(), y_all, n_classes, splits, config, init)
    scores = [{"l2": l2, "accuracy": float(per_l2[i, :, 0].mean()), "log_loss": float(per_l2[i, :, 1].mean()), "accuracy_sd": float(per_l2[i, :, 0].std())} for i, l2 in zip(range(len(per_l2)), config.l2_grid)]
    l2 = config.l2_grid[best]
    best_theta = best_theta.to(dtype)
    if refit:
        theta = _fit(z, y_all, n_classes, l2, config.max_iter, best_theta)
    else:  # on the fitting images alone, polished from the path's looser fit: a few iterations
        theta = _fit(z[fit_rows], y_all[fit_rows], n_classes, l2, config.max_iter, best_theta)
    weight = (theta[:-1] / std[:, None]).T  # fold the standardisation into the head
    bias = theta[-1] - (mean / std) @ theta[:-1]
    return ProbeResult(weight.float().contiguous(), bias.float().contiguous(), l2, scores, chosen_on, sum(len(va) for _, va in splits))


def _with_views(x: torch.Tensor, y: torch.Tensor, x_extra: torch.Tensor, extra_of: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]):
    """The rows with the views appended (labelled as their photos), and each split's fitting rows joined by
    the views of its fitting photos; the judging rows stay the photos' own."""
    n = len(y)
    if extra_of.min() < 0 or extra_of.max() >= n:
        raise ValueError(f"expected extra_of in [0, {n}), got values from {extra_of.min()} to {extra_of.max()}")
    view_rows = n + np.arange(len(extra_of))
    joined = [(np.concatenate([tr, view_rows[np.isin(extra_of, tr)]]), va) for tr, va in splits]
    return torch.cat([x, x_extra]), torch.cat([y, y[torch.as_tensor(extra_of)]]), joined


def _path(z: torch.Tensor, y: torch.Tensor, n_classes: int, splits: list[tuple[np.ndarray, np.ndarray]], config: ProbeConfig, init: torch.Tensor | None = None) -> tuple[np.ndarray, int, torch.Tensor]:
    """Fit the grid's L2 strengths on every split, strongest first, each fit warm-started from the previous one,
    until ``config.patience`` strengths in a row judge worse than the best (where at least ``config.fast_from``
    images judge).

    In float32, and where at least ``config.fast_from`` images judge, to ``config.path_tolerance``: the choice
    needs only validation scores (the chosen strength is then refitted to full tolerance, starting from here).
    Returns (scores (L2 tried, fold, [accuracy, log loss]), index of the best L2, its parameters on the first split).
    """
    per_l2 = np.zeros((len(config.l2_grid), len(splits), 2))
    thetas: list[torch.Tensor | None] = [None if init is None else init.float()] * len(splits)
    best, best_theta = 0, None
    fast = sum(len(va) for _, va in splits) >= config.fast_from
    patience, tolerance = (config.patience, config.path_tolerance) if fast else (0, 1e-9)
    for i, l2 in enumerate(config.l2_grid):
        if patience and i - best > patience:
            per_l2 = per_l2[:i]
            break
        for f, (tr, va) in enumerate(splits):
            thetas[f] = _fit(z[tr], y[tr], n_classes, l2, config.max_iter, thetas[f], tolerance)
            per_l2[i, f] = _scores(z[va], y[va], thetas[f]) if len(va) else (0.0, 0.0)
        if i == 0 or (per_l2[i, :, 0].mean(), -per_l2[i, :, 1].mean()) > (per_l2[best, :, 0].mean(), -per_l2[best, :, 1].mean()):
            best, best_theta = i, thetas[0]
    return per_l2, best, best_theta


def _choice_splits(y: np.ndarray, config: ProbeConfig, seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """(fit indices, judge indices) pairs for choosing L2 without a validation split, and their name."""
    counts = np.bincount(y)
    k = min(config.folds, int(counts[counts > 0].min()))  # every fold judges every class
    if len(y) <= config.kfold_max and k >= 2:
        folds = stratified_folds(y, k, seed)
        everything = np.arange(len(y))
        return [(np.setdiff1d(everything, f), f) for f in folds], f"{k}-fold"
    tr, va = stratified_holdout(y, config.val_frac, seed)
    return [(tr, va)], "holdout"
