"""Figures: created without pyplot, saved as valid PNGs, labels readable and inside the image."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from transferlab.evaluate import plot_confusion_matrix, plot_top_losses, save_figure

# Oxford-IIIT Pet has 37 classes, some with long names.
PET_LIKE = ["staffordshire_bull_terrier", "american_pit_bull_terrier", "Abyssinian"] + [
    f"english_cocker_spaniel_{i}" for i in range(34)
]


def _cm(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 30, size=(n, n))


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    modes = ["RGB", "L", "RGBA"]
    return [
        Image.fromarray(rng.integers(0, 255, size=(32, 24, 3), dtype=np.uint8)).convert(
            modes[i % 3]
        )
        for i in range(n)
    ]


def _gallery(n: int, ncols: int = 4):
    true = [PET_LIKE[i % 3] for i in range(n)]
    pred = [PET_LIKE[(i + 1) % 3] if i % 2 == 0 else true[i] for i in range(n)]
    return plot_top_losses(_images(n), true, pred, [0.9] * n, [0.05] * n, ncols=ncols)


def _assert_png(path: Path, fig, dpi: int = 120) -> None:
    """The file is ``fig`` drawn at ``dpi``: a PNG the figure's size in pixels, less at most the margins that
    bbox_inches="tight" crops (plus its 0.1-inch padding), and not a blank page."""
    full = fig.get_size_inches() * dpi  # (width, height) in pixels
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert all(0.75 * f <= got <= f + 0.2 * dpi + 1 for got, f in zip(image.size, full)), (image.size, full)
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 2  # more than a background and one colour


def _outside_figure(fig, texts) -> list[str]:
    renderer = fig.canvas.get_renderer()
    bbox = fig.bbox
    outside = []
    for text in texts:
        ext = text.get_window_extent(renderer)
        if ext.x0 < bbox.x0 or ext.y0 < bbox.y0 or ext.x1 > bbox.x1 or ext.y1 > bbox.y1:
            outside.append(text.get_text())
    return outside


@pytest.mark.parametrize("n", [2, 5, 12, 37])
@pytest.mark.parametrize("normalize", [False, True])
def test_confusion_matrix_shows_the_matrix_and_saves_it_as_png(tmp_path: Path, n: int, normalize: bool) -> None:
    cm = _cm(n)
    fig = plot_confusion_matrix(cm, PET_LIKE[:n], normalize=normalize)
    ax, bar = fig.axes  # the matrix and its colour bar
    want = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm  # rows: true classes
    assert np.allclose(ax.images[0].get_array(), want)
    assert ax.get_title() == "Confusion matrix" + (" (row-normalised)" if normalize else "")
    assert [t.get_text() for t in ax.get_yticklabels()] == PET_LIKE[:n] and (ax.get_xlabel(), ax.get_ylabel()) == ("Predicted", "True")
    assert bar.get_ylim() == (0.0, 1.0 if normalize else float(cm.max()))  # the scale runs to the largest cell
    _assert_png(save_figure(fig, tmp_path / "cm.png"), fig)


def test_confusion_matrix_37_long_labels_fit_inside_figure() -> None:
    fig = plot_confusion_matrix(_cm(37), PET_LIKE)
    fig.canvas.draw()  # tick label positions are final only after a draw
    ax = fig.axes[0]
    xlabels, ylabels = ax.get_xticklabels(), ax.get_yticklabels()
    assert [t.get_text() for t in xlabels] == PET_LIKE
    assert [t.get_text() for t in ylabels] == PET_LIKE
    assert 45 <= xlabels[0].get_rotation() <= 90
    assert xlabels[0].get_horizontalalignment() == "right"
    assert _outside_figure(fig, [*xlabels, *ylabels, ax.xaxis.label, ax.yaxis.label]) == []
    assert ax.get_xlabel() == "Predicted" and ax.get_ylabel() == "True"


def test_confusion_matrix_grows_and_font_shrinks_with_classes() -> None:
    small = plot_confusion_matrix(_cm(3), PET_LIKE[:3])
    large = plot_confusion_matrix(_cm(37), PET_LIKE)
    assert large.get_figwidth() > 2 * small.get_figwidth()
    assert large.get_figheight() > 2 * small.get_figheight()
    small_font = small.axes[0].get_xticklabels()[0].get_fontsize()
    large_font = large.axes[0].get_xticklabels()[0].get_fontsize()
    assert large_font < small_font


def test_confusion_matrix_cell_text_contrasts_with_cell() -> None:
    cm = np.array([[50, 0], [1, 49]])
    fig = plot_confusion_matrix(cm, ["a", "b"])
    colours = {t.get_text(): t.get_color() for t in fig.axes[0].texts}
    assert colours == {"50": "white", "0": "black", "1": "black", "49": "white"}
    assert len(fig.axes) == 2  # matrix + colourbar


def test_confusion_matrix_no_counts_beyond_30_classes() -> None:
    assert len(plot_confusion_matrix(_cm(37), PET_LIKE).axes[0].texts) == 0


def test_confusion_matrix_normalize_rows() -> None:
    cm = np.array([[3, 1], [0, 0]])  # second row empty: stays 0, no division warning
    fig = plot_confusion_matrix(cm, ["a", "b"], normalize=True)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.75", "0.25", "0.00", "0.00"]


def test_confusion_matrix_validates_shape() -> None:
    with pytest.raises(ValueError, match="expected a square"):
        plot_confusion_matrix(np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="expected 2 class names"):
        plot_confusion_matrix(np.zeros((2, 2)), ["a"])


@pytest.mark.parametrize("n", [1, 4, 5, 9])
def test_top_losses_grid_hides_empty_cells(tmp_path: Path, n: int) -> None:
    fig = _gallery(n, ncols=4)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == n
    assert len(fig.axes) == -(-n // 4) * min(4, n)  # full rows of the grid
    _assert_png(save_figure(fig, tmp_path / "top.png"), fig)


def test_top_losses_titles_and_colours() -> None:
    fig = _gallery(2)
    wrong, right = fig.axes[0].title, fig.axes[1].title
    assert wrong.get_text() == (
        "true: staffordshire_bull_terrier (p=0.05)\npred: american_pit_bull_terrier (p=0.90)"
    )
    assert wrong.get_color() == "tab:red"
    assert right.get_color() == "black"


def test_top_losses_empty(tmp_path: Path) -> None:
    fig = plot_top_losses([], [], [], [], [])
    assert any("no misclassified images" in t.get_text() for t in fig.axes[0].texts)
    _assert_png(save_figure(fig, tmp_path / "empty.png"), fig)


def test_top_losses_validates_inputs() -> None:
    with pytest.raises(ValueError, match="expected 2 entries"):
        plot_top_losses(_images(2), ["a"], ["b", "c"], [0.5, 0.5], [0.1, 0.1])
    with pytest.raises(ValueError, match="expected PIL images"):
        plot_top_losses([np.zeros((4, 4, 3))], ["a"], ["b"], [0.5], [0.1])
    with pytest.raises(ValueError, match="expected ncols >= 1"):
        plot_top_losses([], [], [], [], [], ncols=0)


def test_save_figure_creates_parents_and_rejects_other_formats(tmp_path: Path) -> None:
    fig = plot_confusion_matrix(_cm(2), ["a", "b"])
    path = save_figure(fig, tmp_path / "nested" / "dir" / "cm.png", dpi=50)
    assert path == tmp_path / "nested" / "dir" / "cm.png"
    _assert_png(path, fig, dpi=50)
    with pytest.raises(ValueError, match="expected a path ending in .png"):
        save_figure(fig, tmp_path / "cm.jpg")


def test_plotting_leaks_no_pyplot_figures(tmp_path: Path) -> None:
    before = plt.get_fignums()
    save_figure(plot_confusion_matrix(_cm(5), PET_LIKE[:5]), tmp_path / "a.png")
    save_figure(_gallery(3), tmp_path / "b.png")
    save_figure(plot_top_losses([], [], [], [], []), tmp_path / "c.png")
    assert plt.get_fignums() == before
