"""What a notebook shows: results render themselves as HTML (facts, escaped text, inline PNGs, no pyplot state),
``run.predict`` of one photo is one prediction, and training, evaluating and predicting draw a progress bar
inside a Jupyter kernel (and nothing anywhere else)."""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from PIL import Image

import transferlab as tl
from transferlab import _html

from .conftest import TINY, make_photo

IMG = '<img src="data:image/png;base64,'


@pytest.fixture(scope="module")
def run(tiny_run_dir: Path):
    return tl.load(tiny_run_dir)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    return make_photo(tmp_path / "a <cat>.jpg", 0, seed=900)


def shown(obj) -> str:
    """``obj._repr_html_()``, checking it leaves no figure open in pyplot."""
    before = plt.get_fignums()
    out = obj._repr_html_()
    assert plt.get_fignums() == before == [], "a _repr_html_ left a figure in pyplot's registry"
    return out


# -- _repr_html_ ------------------------------------------------------------------------------------------
def test_a_run_shows_how_it_was_made_its_held_out_score_and_its_confidence(run) -> None:
    html = shown(run)
    m = run.record.metrics
    assert TINY in html and "probe" in html and f"{m['accuracy']:.3f}" in html and "held out" in html
    assert run.confidence.describe(len(run.classes)).split(" ")[0] in html and "cat, dog, fox" in html


def test_an_evaluation_shows_its_tables_and_the_confusion_matrix_and_its_repr_is_short(run) -> None:
    result = run.evaluate(run.training_data(), precision="fp32")
    html = shown(result)
    assert f"{result.accuracy:.3f}" in html and "balanced accuracy" in html and "macro F1" in html
    assert all(f">{name}</td>" in html for name in run.classes) and "precision" in html and "support" in html
    assert html.count(IMG) == 1 and 'alt="confusion matrix"' in html
    text = repr(result)
    assert "array" not in text and len(text) < 200 and f"accuracy={result.accuracy:.3f}" in text


def test_a_comparison_shows_its_leaderboard_and_recommendation_escaped() -> None:
    from transferlab.tasks.compare import BackboneScore, Comparison

    rows = [BackboneScore(name, "pooled", acc, 0.01, acc, 0.01, 5, 30, 100.0, 1.0, 64, 32, 4.0) for name, acc in (("<b>evil</b>", 0.9), ("tiny", 0.8))]
    comparison = Comparison(rows, "<b>evil</b>", "<b>evil</b>", "use <b>evil</b> & be happy", "close to ImageNet", {"images": 30, "splits": ["train"], "classes": 3, "untouched": 9}, 1.0)
    html = shown(comparison)
    assert "&lt;b&gt;evil&lt;/b&gt;" in html and "<b>evil</b>" not in html and "use &lt;b&gt;evil&lt;/b&gt; &amp; be happy" in html
    assert "0.900 ± 0.010" in html and "5-fold acc" in html and "close to ImageNet" in html and "font-weight:bold" in html


def test_an_audit_result_shows_its_findings_and_counts() -> None:
    from transferlab.audit.result import AuditResult, Finding

    finding = Finding("label", "/d/cat/<x>.jpg", "train", "cat", 0.87, "looks like a dog", suggested_label="dog")
    html = shown(AuditResult("/d", TINY, 30, [finding], {}, [], 0.93, {}))
    assert "&lt;x&gt;.jpg" in html and "0.870" in html and "dog" in html and "30 images: 0 exact duplicate, 0 near duplicate, 1 label, 0 outlier" in html


def test_a_dream_shows_its_image_class_probability_and_tv(run) -> None:
    from transferlab.inspect.dream import DreamConfig

    dream = run.dream("dog", DreamConfig(steps=2, size=32))
    html = shown(dream)
    assert html.count(IMG) == 1 and "dog" in html and f"{dream.probability_png:.3f}" in html and f"{dream.tv_per_pixel:.4f}" in html


def test_an_adversarial_example_shows_three_images_and_the_before_and_after(run, photo: Path) -> None:
    from transferlab.attacks import AttackConfig
    from transferlab.attacks.single import attack_image

    example = attack_image(run.model, run.load_image(photo), AttackConfig(steps=2, precision="fp32"))
    html = shown(example)
    r = example.record
    assert html.count(IMG) == 3 and "perturbation ×" in html and f"original: {r['original']['class']}" in html
    assert f"now {r['adversarial']['class']}" in html and "PSNR" in html and ("success" in html or "failed" in html)


def test_a_cam_shows_the_overlay_and_the_class(run, photo: Path) -> None:
    cam = run.explain(photo)
    html = shown(cam)
    assert html.count(IMG) == 2 and cam.class_name in html and f"p={cam.probability:.2f}" in html and cam.layer in html


def test_rich_markup_becomes_escaped_html() -> None:
    assert _html.markup("a [bold]<b>[/] & [red]no[/]\nnext") == 'a <span style="font-weight:bold">&lt;b&gt;</span> &amp; <span style="color:#c0392b">no</span><br>next'


# -- predict: one photo, one prediction -----------------------------------------------------------------
def test_predict_of_one_photo_is_one_prediction_and_of_a_list_or_batch_a_list(run, photo: Path) -> None:
    view = run.load_image(photo)  # (1, 3, H, W)
    with Image.open(photo) as im:
        pil = im.convert("RGB")
    for one in (photo, str(photo), pil, view[0]):
        assert isinstance(run.predict(one, k=2, precision="fp32"), tl.Prediction)
    assert run.predict(photo, precision="fp32").path == str(photo)
    assert len(run.predict([photo], precision="fp32")) == 1 and len(run.predict(view.repeat(3, 1, 1, 1), precision="fp32")) == 3
    assert isinstance(run.predict(view, precision="fp32"), list)  # (1, 3, H, W) is a batch of one


def test_0_1_code_indexing_the_single_prediction_with_0_still_works_with_a_warning(run, photo: Path) -> None:
    p = run.predict(photo, precision="fp32")
    with pytest.warns(DeprecationWarning, match=r"drop the \[0\]"):
        assert p[0] is p
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert p["label"] == p.label  # string keys as before, no warning
    with pytest.raises(KeyError):
        p[1]


# -- progress bars in notebooks -------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.closed: list[str] = []

    def __call__(self, stage: str, total: int):
        recorder = self
        self.stages.append(stage)

        class Bar:
            done = 0

            def __init__(self) -> None:
                self.total = total

            def update(self, done: int) -> None:
                self.done = done

            def close(self) -> None:
                recorder.closed.append(stage)

        return Bar()


def fake_kernel(monkeypatch: pytest.MonkeyPatch, kernel: bool = True) -> None:
    shell = types.SimpleNamespace(kernel=object()) if kernel else types.SimpleNamespace()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


def test_in_a_notebook_train_evaluate_and_predict_draw_progress_bars_by_default(monkeypatch: pytest.MonkeyPatch, photo_folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    bars = Recorder()
    monkeypatch.setattr(_html, "new_bar", bars)
    fake_kernel(monkeypatch)
    ds = tl.load_dataset(photo_folder, val_frac=0.2, test_frac=0.3)
    run = tl.train(ds, backbone=TINY, weights=tiny_weights, precision="fp32")
    assert "features" in bars.stages and sorted(bars.closed) == sorted(bars.stages)  # each bar closed at its end
    for call in (lambda: run.evaluate(ds, cache_dir=tmp_path / "c1"), lambda: run.predict(sorted(photo_folder.rglob("*.jpg"))[:4], cache_dir=tmp_path / "c2")):
        bars.stages.clear()
        call()
        assert bars.stages == ["features"]
    mine = []
    run.predict(sorted(photo_folder.rglob("*.jpg"))[:4], cache_dir=tmp_path / "c3", progress=lambda *a: mine.append(a))
    assert mine and bars.stages == ["features"]  # a callback given wins over the bar


def test_outside_a_notebook_nothing_is_drawn_and_ipython_is_not_imported(monkeypatch: pytest.MonkeyPatch, run, photo: Path, tmp_path: Path) -> None:
    bars = Recorder()
    monkeypatch.setattr(_html, "new_bar", bars)
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    run.predict([photo], cache_dir=tmp_path / "c1")
    assert "IPython" not in sys.modules and not _html.in_notebook()
    fake_kernel(monkeypatch, kernel=False)  # IPython's terminal shell: no kernel
    run.predict([photo], cache_dir=tmp_path / "c2")
    assert bars.stages == [] and _html.notebook_progress() is None


def test_the_notebook_bar_is_tqdm_and_each_stage_ends_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    from tqdm import tqdm

    fake_kernel(monkeypatch)
    progress = _html.notebook_progress()
    progress("features", 0, 4)
    bar = progress.bars["features"].bar
    progress("features", 4, 4)
    assert isinstance(bar, tqdm) and bar.n == 4 and bar.disable and "features" not in progress.bars  # tqdm.close() disables the bar
