"""`transferlab features`, `dream` and `explain`, run in-process as a user would type them (tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from ..conftest import OXFORD_MINI, TINY, make_photo, needs_oxford
from ..test_cli import cli
from .test_gradcam import _oxford_folder


@pytest.fixture
def tiny(tiny_weights: Path) -> list[str]:
    return [TINY, "--weights", str(tiny_weights)]


def test_features_lists_layers_and_draws_a_grid(capsys, monkeypatch, tiny: list[str], tmp_path: Path) -> None:
    code, out, _ = cli(capsys, monkeypatch, "features", *tiny, "--list-layers")
    assert code == 0 and "blocks.2" in out and "conv_head" in out and "x" in out
    photo = make_photo(tmp_path / "cat.jpg", 1, seed=0)
    code, out, _ = cli(capsys, monkeypatch, "features", *tiny, photo, "--stage", "2", "--channels", "4", "--out", tmp_path / "f.png")
    assert code == 0 and "blocks.1: 24 channels" in out and Image.open(tmp_path / "f.png").mode == "RGB"
    code, _, err = cli(capsys, monkeypatch, "features", *tiny, photo, "--layer", "blockz.1")
    assert code == 1 and "unknown layer 'blockz.1' — did you mean 'blocks.1'" in err and "Traceback" not in err


def test_dream_writes_png_json_and_frames(capsys, monkeypatch, tiny: list[str], tmp_path: Path) -> None:
    png = tmp_path / "fish.png"
    args = ["--steps", "4", "--size", "32", "--frames", "3", "--out", png, "--json", "--tv", "50", "--param", "pixel"]
    code, out, _ = cli(capsys, monkeypatch, "dream", *tiny, "--class", "goldfish", *args)
    summary = json.loads(out)
    assert code == 0 and summary["class"] == "goldfish" and 0 <= summary["probability_png"] <= 1
    assert summary["config"]["tv"] == 50 and summary["config"]["param"] == "pixel" and summary["tv_per_pixel"] >= 0
    assert Image.open(png).size == (32, 32) and json.loads(png.with_suffix(".json").read_text())["class"] == "goldfish"
    assert (tmp_path / "fish_frames.png").is_file()
    photo = make_photo(tmp_path / "start.jpg", 2, seed=1)
    code, out, _ = cli(capsys, monkeypatch, "dream", *tiny, "-c", "tabby", "--steps", "2", "--size", "32", "--from", photo, "--out", tmp_path / "t.png")
    assert code == 0 and "tabby cat: probability" in out and "total variation per pixel" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--class", "terrier"], "class 'terrier' is ambiguous"),
    (["--class", "qwxyz"], "unknown class 'qwxyz'"),
    (["--class", "zebra", "--lr", "0"], "expected lr > 0, got 0"),  # --param wavelet: the parser's (test_cli_grammar.py)
])
def test_dream_errors_are_one_line(capsys, monkeypatch, tiny: list[str], args: list[str], message: str) -> None:
    code, _, err = cli(capsys, monkeypatch, "dream", *tiny, "--steps", "1", *args)
    assert code == 1 and message in err and "Traceback" not in err


def test_explain_draws_and_scores(capsys, monkeypatch, tiny: list[str], tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "pet.jpg", 0, seed=3, size=(64, 48))
    code, out, _ = cli(capsys, monkeypatch, "explain", *tiny, photo, "--class", "goldfish", "--out", tmp_path / "cam.png", "--json")
    result = json.loads(out)
    assert code == 0 and result["class"] == "goldfish" and result["layer"] == "bn2" and Image.open(tmp_path / "cam.png").mode == "RGB"
    root = _oxford_folder(tmp_path / "oxford")
    code, out, _ = cli(capsys, monkeypatch, "explain", *tiny, "--score", root, "-q")
    assert code == 0 and "peak on the pet" in out and "of 3 images" in out and "of 2 images with a box" in out


@pytest.mark.slow
@needs_oxford
def test_explain_score_on_the_oxford_mini_set(capsys, monkeypatch) -> None:
    """Bundled lite0 on 24 trainval photos: Grad-CAM points at the pet far more often than chance."""
    code, out, _ = cli(capsys, monkeypatch, "explain", "efficientnet_lite0", "--score", OXFORD_MINI, "--score-split", "trainval", "--limit", "24", "--json")
    result = json.loads(out)
    assert code == 0 and result["n"] == 24 and result["n_head"] >= 20  # 4 of the 300 trainval photos lack a box
    assert result["in_pet"] >= 0.6 and result["in_head"] is not None
