"""``views`` (extra training rows for the head) and ``tta`` (averaged views at prediction) through a run: what the
record keeps, what averaging may and may not change, and that ``predict --tta`` answers as the Python API does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image

import transferlab as tl

from ..conftest import TINY, train_tiny
from ..test_cli import cli

TOL = 1e-5


def _save(pixels: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path)  # PNG: the pixels exactly
    return path


def test_views_are_recorded_and_round_trip_through_save_and_load(photo_folder, tiny_weights, tmp_path) -> None:
    run = tl.train(tl.load_dataset(photo_folder), backbone=TINY, weights=tiny_weights, precision="fp32", views=2, out=tmp_path / "run")
    assert run.record.timing.extra["views"] == ["flip", "shift-tl"] and run.record.timing.extra["view_images_computed"] > 0
    again = tl.load(tmp_path / "run")
    assert again.record.config.views == 2 and json.loads((tmp_path / "run" / "model.json").read_text())["config"]["views"] == 2
    plain = train_tiny(photo_folder, tiny_weights)
    assert plain.record.config.views == 0 and "views" not in plain.record.timing.extra
    with pytest.raises(tl.ConfigError, match="--views"):
        tl.TrainConfig(views=4)


def test_tta_changes_nothing_for_a_photo_every_view_sees_alike(tiny_run_dir, tmp_path) -> None:
    run = tl.load(tiny_run_dir)
    flat = _save(np.full((40, 48, 3), (200, 60, 30)), tmp_path / "flat.png")  # one colour: every view the same pixels
    half = np.linspace(0, 255, 24)[None, :, None] * np.ones((40, 1, 3))
    mirrored = _save(np.concatenate([half, half[:, ::-1]], axis=1), tmp_path / "mirrored.png")  # left-right symmetric
    np.testing.assert_allclose(run.predict_proba([flat], tta=True), run.predict_proba([flat]), atol=TOL)
    np.testing.assert_allclose(run.predict_proba([mirrored], tta=1), run.predict_proba([mirrored]), atol=TOL)  # flip alone


def test_tta_averages_views_that_differ(tiny_run_dir, tmp_path) -> None:
    run = tl.load(tiny_run_dir)
    ramp = np.linspace(0, 255, 48)[None, :, None] * np.array([1.0, 0.2, 0.6]) * np.ones((40, 1, 3))
    photo = _save(ramp, tmp_path / "ramp.png")
    plain, averaged = run.predict_scored([photo]), run.predict_scored([photo], tta=True)
    assert averaged.views == ("flip", "shift-tl", "shift-br") and plain.views == ()
    assert np.abs(plain.logits - averaged.logits).max() > 1e-6
    assert np.array_equal(averaged.features.numpy(), plain.features.numpy())  # the plain view's features, for near-copy search
    np.testing.assert_allclose(run.predict_proba([Image.open(photo)], tta=True), averaged.probs, atol=TOL)  # a PIL image: the same views
    assert run.with_tta().predict_scored([photo]).views == averaged.views and run.tta is False  # with_tta: a copy


def test_predict_and_evaluate_tta_answer_as_the_python_api(capsys, monkeypatch, tiny_run_dir, photo_folder, tmp_path) -> None:
    files = sorted(photo_folder.rglob("*.jpg"))[:4]
    code, out, err = cli(capsys, monkeypatch, "predict", tiny_run_dir, *files, "--json", "--tta")
    assert code == 0 and "test-time augmentation" in err
    expected = tl.load(tiny_run_dir).predict(files, tta=True)
    for row, want in zip(json.loads(out), expected):
        assert row["label"] == want.label and row["prob"] == pytest.approx(want.prob, abs=TOL)
    code, out, err = cli(capsys, monkeypatch, "evaluate", tiny_run_dir, photo_folder, "--json", "--tta", "--out", tmp_path / "ev")
    assert code == 0 and json.loads(out)["tta"] == ["plain", "flip", "shift-tl", "shift-br"]
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["tta"] == ["plain", "flip", "shift-tl", "shift-br"]
    assert tl.load(tiny_run_dir).with_tta(1).evaluate(tl.load_dataset(photo_folder)).metrics["tta"] == ["plain", "flip"]  # the API records it too
    assert "tta" not in tl.load(tiny_run_dir).evaluate(tl.load_dataset(photo_folder)).metrics
    code, _, err = cli(capsys, monkeypatch, "predict", tiny_run_dir, *files, "--tta", "--runtime", "onnx")
    assert code != 0 and "--tta" in err


def test_a_config_saved_before_views_existed_reads_back_as_no_views() -> None:
    saved = tl.TrainConfig().to_dict()
    del saved["views"]
    assert tl.TrainConfig.from_dict(saved).views == 0 and tl.TrainConfig.from_dict({**saved, "views": 2}).views == 2


def test_a_view_that_failed_to_decode_leaves_only_that_photo_s_mean() -> None:
    from transferlab.run.prediction import average_views

    plain = torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])  # photos at positions 0, 2 and 5
    mirrored = ([0, 5], torch.tensor([[3.0, 3.0], [5.0, 5.0]]))  # position 2 failed in this view
    torch.testing.assert_close(average_views([0, 2, 5], plain, [mirrored, ([], torch.zeros(0, 2))]), torch.tensor([[2.0, 2.0], [2.0, 2.0], [4.0, 4.0]]))
