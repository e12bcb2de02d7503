"""Figures for evaluation: confusion matrix and a gallery of the worst predictions.

Figures are built on ``matplotlib.figure.Figure`` with an Agg canvas, never through pyplot, so
nothing global changes (no open-figure registry, no backend switch) and everything works
headless. matplotlib is imported inside the functions so that importing
``transferlab.evaluate`` for its metrics stays cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from PIL import Image

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Size of one confusion-matrix cell and room left for labels and colourbar, in inches.
_CELL_IN = 0.42
_MARGIN_W_IN = 3.5
_MARGIN_H_IN = 3.0
_MIN_SIDE_IN = 4.5
# Counts stop fitting in cells (and stop being readable) beyond this many classes.
_MAX_CLASSES_WITH_COUNTS = 30
_WRONG_COLOUR = "tab:red"


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A matplotlib Figure on the Agg canvas, outside pyplot: no global state, safe in threads and servers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)  # attaches itself to fig; makes tight_layout and savefig work
    return fig


def _label_fontsize(n_classes: int) -> float:
    """11 pt for up to 10 classes, shrinking to 7 pt from 30 classes on (a cell is ~30 pt)."""
    return float(np.clip(13.0 - 0.2 * n_classes, 7.0, 11.0))


def plot_confusion_matrix(
    cm: np.ndarray, classes: Sequence[str], normalize: bool = False
) -> Figure:
    """Draw a confusion matrix with readable labels for 2 to ~40 classes.

    The figure grows with the class count and the font shrinks; x labels are rotated 45 degrees
    and right-aligned; counts are written in the cells (white on dark, black on light) for up
    to 30 classes; the layout is tightened so long class names are not cut off.

    Args:
        cm: Counts of shape (C, C), rows true classes, columns predicted (see
            :func:`transferlab.evaluate.confusion_matrix`).
        classes: The C class names, in index order.
        normalize: Divide each row by its total, so cells show the fraction of each true
            class (rows with no samples stay 0).

    Returns:
        The figure (Agg canvas, not registered with pyplot).

    Raises:
        ValueError: If ``cm`` is not square or does not match ``classes``.
    """
    cm = np.asarray(cm)
    values = _confusion_values(cm, classes, normalize)
    n = len(classes)
    side = _CELL_IN * n
    fig = new_figure(
        (max(_MIN_SIDE_IN, side + _MARGIN_W_IN), max(_MIN_SIDE_IN, side + _MARGIN_H_IN))
    )
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(float(values.max()), 1.0)
    image = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fontsize = _label_fontsize(n)
    _label_confusion_axes(ax, classes, fontsize)
    ax.set_title("Confusion matrix" + (" (row-normalised)" if normalize else ""))
    if n <= _MAX_CLASSES_WITH_COUNTS:
        cell_fontsize = max(fontsize - 1.0, 6.0)
        for (i, j), value in np.ndenumerate(values):
            text = f"{value:.2f}" if normalize else f"{int(cm[i, j])}"
            colour = "white" if value > vmax / 2 else "black"
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=cell_fontsize)
    fig.tight_layout()
    return fig


def _confusion_values(cm: np.ndarray, classes: Sequence[str], normalize: bool) -> np.ndarray:
    """``cm`` as floats, each row divided by its total with ``normalize`` (empty rows stay 0); checks its shape."""
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise InputError(f"expected a square (C, C) matrix, got shape {cm.shape}")
    n = cm.shape[0]
    if len(classes) != n:
        raise InputError(f"expected {n} class names for a {n}x{n} matrix, got {len(classes)}")
    values = cm.astype(np.float64)
    if normalize:
        totals = values.sum(axis=1, keepdims=True)  # (C, 1)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    return values


def _label_confusion_axes(ax: Axes, classes: Sequence[str], fontsize: float) -> None:
    """Class names on both axes (x rotated 45 degrees, right-aligned under its column) and the axis titles."""
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    # rotation_mode="anchor" turns each label about its right end, so it ends under its column.
    ax.set_xticklabels(
        classes, rotation=45, ha="right", rotation_mode="anchor", fontsize=fontsize
    )
    ax.set_yticklabels(classes, fontsize=fontsize)
    ax.set_xlabel("Predicted", fontsize=12)
    ax.set_ylabel("True", fontsize=12)


def _check_gallery_inputs(
    images: Sequence[Image.Image],
    true: Sequence[str],
    pred: Sequence[str],
    prob_pred: Sequence[float],
    prob_true: Sequence[float],
    ncols: int,
) -> None:
    if ncols < 1:
        raise InputError(f"expected ncols >= 1, got {ncols}")
    lengths = {
        "true": len(true),
        "pred": len(pred),
        "prob_pred": len(prob_pred),
        "prob_true": len(prob_true),
    }
    bad = {name: length for name, length in lengths.items() if length != len(images)}
    if bad:
        raise InputError(f"expected {len(images)} entries (one per image), got {bad}")
    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise InputError(f"expected PIL images, got {type(image).__name__} at index {i}")


def plot_top_losses(
    images: Sequence[Image.Image],
    true: Sequence[str],
    pred: Sequence[str],
    prob_pred: Sequence[float],
    prob_true: Sequence[float],
    ncols: int = 4,
) -> Figure:
    """Show images in a grid, each titled with its true and predicted class.

    Titles read ``"true: X (p=0.05)\\npred: Y (p=0.93)"`` (the probability given to the true and
    to the predicted class), in red when the prediction is wrong. Unused cells of the last row
    are hidden; with no images the figure says "no misclassified images".

    Args:
        images: The images, usually those picked by :func:`transferlab.evaluate.top_losses`.
        true: True class name per image.
        pred: Predicted class name per image.
        prob_pred: Probability of the predicted class per image.
        prob_true: Probability of the true class per image.
        ncols: Maximum number of columns.

    Returns:
        The figure (Agg canvas, not registered with pyplot).

    Raises:
        ValueError: If the sequences differ in length, an image is not a PIL image, or
            ``ncols`` < 1.
    """
    _check_gallery_inputs(images, true, pred, prob_pred, prob_true, ncols)
    n = len(images)
    if n == 0:
        fig = new_figure((4.0, 1.5))
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=12)
        ax.set_axis_off()
        return fig

    cols = min(ncols, n)
    rows = math.ceil(n / cols)
    fig = new_figure((2.8 * cols, 3.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)  # (rows, cols)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, image, t, p, pp, pt in zip(axes.flat, images, true, pred, prob_pred, prob_true):
        ax.imshow(np.asarray(image.convert("RGB")))
        ax.set_title(
            f"true: {t} (p={pt:.2f})\npred: {p} (p={pp:.2f})",
            fontsize=8,
            color=_WRONG_COLOUR if t != p else "black",
        )
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: Path, dpi: int = 120) -> Path:
    """Write a figure as PNG, creating the parent folder if needed.

    The figure is left open and untouched (call nothing global to close it; it is freed when
    no longer referenced).

    Args:
        fig: The figure to write.
        path: Destination; must end in ``.png``.
        dpi: Resolution in dots per inch.

    Returns:
        The path written.

    Raises:
        ValueError: If ``path`` does not end in ``.png`` or ``dpi`` is not positive.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"expected a path ending in .png, got {str(path)!r}")
    if dpi <= 0:
        raise InputError(f"expected dpi > 0, got {dpi}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # bbox_inches="tight" is a safety net for labels that tight_layout could not fit.
    fig.savefig(path, dpi=dpi, format="png", bbox_inches="tight")
    return path


def plot_history(history: Sequence[dict[str, float]]) -> Figure:
    """Training curves: loss and accuracy per epoch, train and validation side by side.

    ``history`` rows hold ``epoch`` and any of ``train_loss``, ``val_loss``, ``train_accuracy``,
    ``val_accuracy`` (a row without a key leaves a gap, e.g. epoch 0 has no training metrics).
    """
    fig = new_figure((10, 4))
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy")):
        for split, style in (("train", "o-"), ("val", "s-")):
            key = f"{split}_{metric}"
            points = [(row["epoch"], row[key]) for row in history if key in row]
            if points:
                ax.plot(*zip(*points), style, label=split)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_tradeoff(
    names: Sequence[str], speed: Sequence[float], accuracy: Sequence[float], spread: Sequence[float],
    highlight: str | None = None, title: str = "",
) -> Figure:
    """Accuracy against images/s (log scale), one labelled point per name, ``spread`` as vertical error bars;
    ``highlight`` is drawn in another colour (the recommendation)."""
    fig = new_figure((7.0, 4.8))
    ax = fig.add_subplot()
    for name, x, y, e in zip(names, speed, accuracy, spread):
        colour = "tab:red" if name == highlight else "tab:blue"
        ax.errorbar([x], [y], yerr=[e], fmt="o", color=colour, capsize=3)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("feature extraction, images/s (this machine)")
    ax.set_ylabel("k-fold probe accuracy (± fold sd)")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
