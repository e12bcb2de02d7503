"""``--backbone auto`` and the paired rule behind it (``train.crossval``): a costlier candidate is kept only on a
clear cross-validated win, never on random labels or when its features are wrecked, and the run says what it tried."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import transferlab as tl
from transferlab.data.dataset import Sample
from transferlab.run import choose
from transferlab.run.config import TrainConfig
from transferlab.train.crossval import _t_cdf, confidence, ladder, out_of_fold, required_win_rate

N, CLASSES = 240, 4
LITE0 = "efficientnet_lite0"


def _samples(y: np.ndarray) -> list[Sample]:
    return [Sample(Path(f"/photos/{i}.jpg"), int(label), "train") for i, label in enumerate(y)]


def _signal(y: np.ndarray, strength: float, seed: int, dim: int = 32) -> torch.Tensor:
    """Features whose first dimensions point to the class with ``strength`` against unit noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(y), dim, generator=g)
    x[:, :CLASSES] += strength * torch.nn.functional.one_hot(torch.as_tensor(y), CLASSES).float()
    return x


def _decide(features: dict[str, torch.Tensor], y: np.ndarray, seed: int = 0) -> choose.Choice:
    samples = _samples(y)
    rows = {name: {s.path: row for s, row in zip(samples, x)} for name, x in features.items()}
    names = [choose.label(*c) for c in choose.CANDIDATES]
    return choose._decide(choose.Choice(*choose.CANDIDATES[0]), dict(zip(names, rows.values())), samples, TrainConfig(seed=seed), time.perf_counter())


@pytest.mark.parametrize("seed", range(4))
def test_random_labels_keep_the_default(seed: int) -> None:
    y = np.random.default_rng(seed).integers(0, CLASSES, N)
    choice = _decide({f"c{i}": _signal(y, 0.0, seed * 10 + i) for i in range(3)}, y, seed)
    assert (choice.backbone, choice.features) == choose.CANDIDATES[0], choice.line()
    assert [t["kept"] for t in choice.tried] == [True, False, False]


@pytest.mark.parametrize("seed", range(3))
def test_a_clear_win_is_kept_and_wrecked_features_never(seed: int) -> None:
    y = np.random.default_rng(seed).integers(0, CLASSES, N)
    weak, wrecked, strong = _signal(y, 1.0, seed), _signal(y, 0.0, seed + 1), _signal(y, 3.0, seed + 2)
    choice = _decide({"weak": weak, "wrecked": wrecked, "strong": strong}, y, seed)
    assert (choice.backbone, choice.features) == choose.CANDIDATES[2], choice.line()
    assert [t["kept"] for t in choice.tried] == [True, False, True]
    assert choice.tried[2]["win_rate"] >= 0.9 and choice.tried[2]["against"] == choose.label(*choose.CANDIDATES[0])
    assert "sure it is better" in choice.line() and f"{choice.repeats}x5-fold" in choice.line()
    wrecked_only = _decide({"weak": weak, "wrecked": wrecked, "also wrecked": _signal(y, 0.0, seed + 3)}, y, seed)
    assert (wrecked_only.backbone, wrecked_only.features) == choose.CANDIDATES[0] and "is not clearly better" in wrecked_only.line()


def test_out_of_fold_never_scores_an_image_with_a_probe_that_saw_it() -> None:
    y = np.repeat(np.arange(CLASSES), 10)
    x = torch.randn(len(y), 8)
    x[5] = 100.0  # an image no other resembles: a probe that saw it would get it right, one that did not cannot
    oof = out_of_fold(x, y, folds=5, repeats=2, seed=0)
    assert oof.correct.shape == (2, len(y)) and len(oof.fold_accuracy) == 10
    assert oof.summary()["accuracy"] < 0.6  # random features: near chance out of fold (a leak would fit them)


def test_the_paired_test_is_strict_and_corrected_for_overlapping_folds() -> None:
    base = [0.80, 0.85, 0.90, 0.75, 0.85]
    assert confidence(base, base, 5) == 0.0  # no difference: no confidence at all
    up = [a + 0.02 for a in base]
    assert confidence(base, up, 5) == 1.0  # better on every fold by the same margin
    noisy = [0.85, 0.80, 0.95, 0.75, 0.85]  # +1 point on average from one fold
    assert 0.5 < confidence(base, noisy, 5) < 0.9
    assert abs(_t_cdf(1.761, 14) - 0.95) < 1e-3 and abs(_t_cdf(-2.132, 4) - 0.05) < 1e-3  # Student's t tables
    pick, steps = ladder(["cheap", "dear", "dearest"], [base, up, noisy], 0.9, folds=5)
    assert pick == 1 and steps[1].against == "cheap" and steps[1].kept and steps[2].against == "cheap" and not steps[2].kept
    best = [a + 0.06 for a in base]  # clearly better than the default, and more accurate than ``up``
    assert ladder(["cheap", "dear", "dearest"], [base, up, best], 0.9, folds=5)[0] == 2  # the most accurate clear winner
    assert required_win_rate(0.9, 2) == pytest.approx(0.95) and required_win_rate(0.9, 1) == pytest.approx(0.9)


def test_auto_resolves_from_the_strategy_and_refuses_weights() -> None:
    assert choose.resolve(TrainConfig(strategy="auto")).backbone == "auto"
    assert choose.resolve(TrainConfig()).backbone == LITE0
    assert choose.resolve(TrainConfig(strategy="auto", backbone=LITE0)).backbone == LITE0  # a named backbone stays
    with pytest.raises(tl.ConfigError, match="--backbone auto"):
        choose.resolve(TrainConfig(backbone="auto", weights="w.safetensors"))


def test_train_with_backbone_auto_records_what_it_tried(photo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(choose, "CANDIDATES", choose.CANDIDATES[:2])  # the bundled lite0, pooled and multi: seconds on 30 photos
    run = tl.train(tl.load_dataset(photo_folder), backbone="auto", precision="fp32", cache_dir=tmp_path / "cache", out=tmp_path / "run")
    record = run.record
    assert record.decision.startswith("backbone auto:") and [t["name"] for t in record.choice["tried"]] == [LITE0, f"{LITE0} (multi)"]
    assert record.config.backbone == LITE0 and record.config.features == record.choice["features"]  # the saved recipe is concrete
    saved = json.loads((tmp_path / "run" / "model.json").read_text())
    assert saved["choice"]["images"] == record.choice["images"] > 0
    assert tl.load(tmp_path / "run").record.choice == record.choice


def test_auto_skips_candidates_the_budget_cannot_hold(photo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(choose, "CANDIDATES", choose.CANDIDATES[:2])
    ds = tl.load_dataset(photo_folder)
    choice = choose.choose_backbone(ds, TrainConfig(backbone="auto", precision="fp32"), tmp_path / "cache", None, deadline=time.monotonic() + 0.01)
    assert (choice.backbone, choice.features) == choose.CANDIDATES[0] and len(choice.tried) == 1
    assert "not tried" in choice.skipped[0] and "time left" in choice.skipped[0] and "not tried" in choice.line()


def test_a_class_of_one_photo_still_cross_validates() -> None:
    y = np.array([0] * 20 + [1] * 20 + [2])  # Caltech-101 capped at 300 images leaves classes of one photo
    oof = out_of_fold(torch.randn(len(y), 8), y, folds=5, repeats=1, seed=0)
    assert oof.folds == 5 and oof.correct.shape == (1, len(y)) and not oof.correct[0, -1]  # never seen in training: never right
