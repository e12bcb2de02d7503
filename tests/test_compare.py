"""`compare`: k-fold probe scores of several backbones on the user's train + val images, cached per backbone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import transferlab as tl

from transferlab.tasks.compare import BackboneScore, _recommend
from transferlab.features import FeatureCache, cache_key, pick_runtime
from transferlab.features.cache import content_hash

from .conftest import FAMILIES, TINY
from .test_cli import cli


@pytest.fixture
def two(family_weights, tiny_weights: Path) -> dict[str, Path]:
    return {TINY: tiny_weights, "test_vit": family_weights("test_vit")}


def test_compare_scores_train_and_val_only_and_writes_its_files(photo_folder: Path, two, tmp_path: Path) -> None:
    ds = tl.load_dataset(photo_folder)
    result = tl.compare(ds, list(two), weights=two, folds=3, precision="fp32", out=tmp_path / "cmp")
    assert {r.name for r in result.rows} == set(two)
    scored = len(ds.split("train")) + len(ds.split("val"))
    for r in result.rows:
        assert r.n_images == scored and 0 <= r.accuracy <= 1 and r.accuracy_sd >= 0 and r.images_per_s > 0 and r.params_m > 0
    assert result.data["untouched"] == len(ds.split("test")) > 0
    assert result.recommended in two and result.recommendation.startswith(f"use {result.recommended}")
    # the test split was never run through any backbone: none of its files is in a feature cache
    for name, path in two.items():
        bb = tl.create_backbone(name, path)
        cached = FeatureCache(None, cache_key(bb.model, pick_runtime(precision="fp32"))).get(content_hash(s.path.read_bytes()) for s in ds.split("test"))
        assert not cached
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["recommended"] == result.recommended and len(saved["rows"]) == 2
    assert (tmp_path / "cmp" / "compare.csv").read_text().splitlines()[0].startswith("name,features,accuracy")
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 1000


def test_adding_a_backbone_scores_only_that_one(photo_folder: Path, two, monkeypatch) -> None:
    ds = tl.load_dataset(photo_folder)
    first = tl.compare(ds, [TINY], weights={TINY: two[TINY]}, folds=3, precision="fp32")
    calls = []
    real = sys.modules["transferlab.tasks.compare"]._kfold
    monkeypatch.setattr(sys.modules["transferlab.tasks.compare"], "_kfold", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    again = tl.compare(ds, list(two), weights=two, folds=3, precision="fp32", combine=True)
    assert len(calls) == 2  # test_vit, and the combination; the tiny EfficientNet came from the score cache
    assert again.row(TINY).accuracy == first.rows[0].accuracy
    combo = next(r for r in again.rows if r.members)
    assert combo.feature_dim == sum(again.row(n).feature_dim for n in two) and combo.n_images == first.rows[0].n_images


def _row(name: str, folds: list[float], speed: float) -> BackboneScore:
    """A leaderboard row with these per-fold accuracies (the same folds for every row)."""
    acc = sum(folds) / len(folds)
    return BackboneScore(name, "pooled", acc, 0.02, acc, 0.02, 5, 200, speed, 1.0, 8, 32, 1.0, fold_accuracy=folds)


def test_a_slower_backbone_is_recommended_only_on_a_clear_paired_win() -> None:
    base = [0.85, 0.80, 0.90, 0.825, 0.875] * 3
    lucky = [0.90, 0.775, 0.875, 0.85, 0.90] * 3  # +1 point on average, up on some folds and down on others
    clear = [a + 0.05 for a in base]  # +5 points on every fold
    best, pick, line, steps = _recommend(sorted([_row("big", lucky, 10), _row("tiny", base, 200)], key=lambda r: -r.accuracy))
    assert (best.name, pick.name) == ("big", "tiny") and "is not clearly better than tiny" in line and "20.0x its speed" in line
    assert steps[1].name == "big" and not steps[1].kept and steps[1].win_rate < 0.9
    best, pick, line, steps = _recommend(sorted([_row("big", clear, 10), _row("tiny", base, 200)], key=lambda r: -r.accuracy))
    assert pick.name == "big" and steps[1].kept and steps[1].win_rate > 0.99 and "clearly better than the fastest, tiny" in line


def test_multi_features_are_wider_and_cached_apart(photo_folder: Path, two) -> None:
    ds = tl.load_dataset(photo_folder)
    pooled = tl.compare(ds, [TINY], weights={TINY: two[TINY]}, folds=3, precision="fp32").rows[0]
    multi = tl.compare(ds, [TINY], weights={TINY: two[TINY]}, folds=3, precision="fp32", features="multi").rows[0]
    assert multi.features == "multi" and multi.feature_dim == pooled.feature_dim + 32 + 48 + 64  # the last 3 stages of test_efficientnet
    key = cache_key(tl.create_backbone(TINY, two[TINY]).model, pick_runtime(precision="fp32"))
    assert set(key) == {"weights", "arch", "preprocess", "precision", "version"}  # pooled keys as before modes: old caches stay valid
    multi_key = cache_key(tl.create_backbone(TINY, two[TINY], features="multi").model, pick_runtime(precision="fp32"))
    assert multi_key["arch"].startswith("CombinedNet:combined-multi:") and multi_key["weights"] != key["weights"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_multi_features_match_their_declared_width_in_every_family(family: str, family_weights) -> None:
    import torch

    bb = tl.create_backbone(FAMILIES[family], family_weights(FAMILIES[family]), features="multi")
    x = torch.rand(2, 3, 64, 64) if family != "vit" else torch.rand(2, 3, *bb.model.preprocess.input_size)
    with torch.no_grad():
        feats = bb.model.features(x)
    assert feats.shape == (2, bb.model.feature_dim) and torch.isfinite(feats).all()


def test_offline_without_weights_is_one_clear_line_before_any_work(capsys, monkeypatch, photo_folder: Path) -> None:
    code, out, err = cli(capsys, monkeypatch, "compare", photo_folder, "--backbones", "resnet18")
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()] and "no offline weights for 'resnet18'" in err and "--weights resnet18=FILE" in err


def test_cli_prints_table_and_recommendation_and_json(capsys, monkeypatch, photo_folder: Path, two, tmp_path: Path) -> None:
    args = ["compare", photo_folder, "--backbones", ",".join(two), *[a for n, p in two.items() for a in ("--weights", f"{n}={p}")], "--folds", "3", "--precision", "fp32", "-q"]
    code, out, err = cli(capsys, monkeypatch, *args, "--out", tmp_path / "o")
    assert code == 0, err
    assert "use " in out and "ImageNet head's mean confidence" in out and TINY in out and "compare.png" in out
    code, out, _ = cli(capsys, monkeypatch, *args, "--json")
    assert code == 0 and json.loads(out)["recommended"] in two
    code, _, err = cli(capsys, monkeypatch, "compare", photo_folder, "--weights", "no-equals-sign")
    assert code == 1 and "expected --weights NAME=FILE" in err
