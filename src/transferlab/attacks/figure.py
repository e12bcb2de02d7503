"""Figures: one attack (original | amplified perturbation | adversarial, top-5 before/after) and the
robustness curve and success matrix. Built without pyplot (see ``evaluate.plots``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..evaluate.plots import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_BEFORE, _AFTER, _OTHER = "tab:blue", "tab:red", "0.6"


def _hwc(image: torch.Tensor) -> np.ndarray:
    return image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


def plot_attack(
    original: torch.Tensor,
    adversarial: torch.Tensor,
    probs_before: torch.Tensor,
    probs_after: torch.Tensor,
    classes: Sequence[str],
    title: str = "",
    k: int = 5,
) -> Figure:
    """Original, perturbation (scaled so its largest change is full contrast, grey = no change) and
    adversarial image above; the top-k probabilities before and after below.

    Shape:
        original, adversarial (3, H, W) in [0, 1]; probs_before, probs_after (C,).
    """
    delta = (adversarial - original).detach().float().cpu()
    peak = float(delta.abs().max())
    gain = 0.5 / peak if peak > 0 else 1.0
    top_b, top_a = int(probs_before.argmax()), int(probs_after.argmax())
    fig = new_figure((11, 7.2))
    grid = fig.add_gridspec(2, 6, height_ratios=[1.5, 1])
    panels = [
        (_hwc(original), f"original: {classes[top_b]} {float(probs_before[top_b]):.2f}"),
        ((delta * gain + 0.5).clamp(0, 1).permute(1, 2, 0).numpy(), f"perturbation ×{gain:.0f} (max {peak * 255:.0f}/255)"),
        (_hwc(adversarial), f"adversarial: {classes[top_a]} {float(probs_after[top_a]):.2f}"),
    ]
    for i, (pixels, caption) in enumerate(panels):
        ax = fig.add_subplot(grid[0, 2 * i : 2 * i + 2])
        ax.imshow(pixels)
        ax.set_title(caption, fontsize=10)
        ax.set_axis_off()
    marked = {top_b: _BEFORE, top_a: _AFTER}
    for j, (probs, name) in enumerate(((probs_before, "before"), (probs_after, "after"))):
        ax = fig.add_subplot(grid[1, 3 * j : 3 * j + 3])
        p = probs.detach().float().cpu()
        order = p.argsort(descending=True)[: min(k, len(p))].tolist()[::-1]  # largest at the top
        values = [float(p[i]) for i in order]
        ax.barh(range(len(order)), values, color=[marked.get(i, _OTHER) for i in order])
        for row, (i, v) in enumerate(zip(order, values)):  # names on the bars: long ones need no margin
            ax.text(0.01 if v < 0.5 else v - 0.01, row, f"{classes[i]}  {v:.2f}", va="center", ha="left" if v < 0.5 else "right", fontsize=9,
                    color="black" if v < 0.5 else "white", transform=ax.transData)
        ax.set_xlim(0, 1)
        ax.set_yticks([])
        ax.set_title(f"top-{len(order)} {name}", fontsize=10)
        ax.tick_params(labelsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_robustness(eps: Sequence[float], accuracy: Sequence[float], title: str = "") -> Figure:
    """Robust accuracy against the budget, ε on the axis in 8-bit levels (ε·255)."""
    fig = new_figure((5.5, 4))
    ax = fig.subplots()
    ax.plot([e * 255 for e in eps], accuracy, "o-")
    ax.set_xlabel("ε (× 1/255)")
    ax.set_ylabel("accuracy under attack")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_success_matrix(success: np.ndarray, median_eps: np.ndarray, classes: Sequence[str], eps: float) -> Figure:
    """Source (rows) -> target (columns) success rate at ``eps``, each cell also giving the median minimal ε.

    Shape:
        success, median_eps (C, C); NaN on the diagonal and where no image reached the target.
    """
    n = len(classes)
    side = max(4.5, 0.9 * n + 2.5)
    fig = new_figure((side + 1, side))
    ax = fig.subplots()
    image = ax.imshow(np.nan_to_num(success, nan=0.0), vmin=0, vmax=1, cmap="Reds")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("target")
    ax.set_ylabel("source (true class)")
    ax.set_title(f"targeted success at ε = {eps * 255:.3g}/255\n(median minimal ε in cells)", fontsize=10)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                med = median_eps[i, j]
                text = f"{success[i, j]:.2f}\n" + ("—" if np.isnan(med) else f"{med * 255:.3g}/255")
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if success[i, j] > 0.6 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
