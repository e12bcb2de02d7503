"""Out of distribution: ``evaluate --ood`` (AUROC, FPR95, the histogram) and a run that says "none of these"
with the ``energy`` score (tiny model, generated photos)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import transferlab as tl

from ..conftest import TINY, make_photo
from ..test_cli import cli


def other_photos(folder: Path) -> list[Path]:
    """Photos of none of the run's colour classes: 6 of other colours and 6 of uniform noise."""
    paths = [make_photo(folder / f"colour_{i}.jpg", hue=3 + i % 3, seed=1000 + i) for i in range(6)]
    rng = np.random.default_rng(0)
    for i in range(6):
        paths.append(folder / f"noise_{i}.png")
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def test_evaluate_with_ood_images_reports_auroc_fpr95_and_draws_both_scores(tiny_run_dir: Path, tmp_path: Path) -> None:
    from sklearn.metrics import roc_auc_score

    run = tl.load(tiny_run_dir)
    data = tl.load_dataset(run.meta["data"]["root"])
    others = other_photos(tmp_path / "ood")
    result = run.evaluate(data, ood=others, out=tmp_path / "ev", precision="fp32")
    ood = result.metrics["ood"]
    assert (ood["method"], ood["n_in"], ood["n_out"]) == (run.confidence.method, len(result.scores), len(others))
    assert len(result.ood_scores) == len(others)
    # AUROC is P(an evaluated image scores above an ood one): as scikit-learn computes it from the same scores
    labels = np.r_[np.ones(len(result.scores)), np.zeros(len(others))]
    assert ood["auroc"] == pytest.approx(roc_auc_score(labels, np.r_[result.scores, result.ood_scores]))
    # FPR95: the share of ood images above the score that accepts 95 % of the evaluated ones
    assert ood["fpr95"] == pytest.approx(np.mean(result.ood_scores >= np.quantile(result.scores, 0.05, method="lower")))
    assert ood["auroc"] >= 0.9 and ood["fpr95"] <= 0.25  # noise and other colours are easy to tell from the three colours
    assert ood["accepted_out"] == pytest.approx(np.mean(result.ood_scores >= run.confidence.threshold))
    assert set(ood["baseline"]) == {"method", "auroc", "fpr95"} and ood["baseline"]["method"] == "msp"
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["ood"] == ood  # saved with the evaluation
    with Image.open(result.files["ood_scores"]) as png:
        assert result.files["ood_scores"] == tmp_path / "ev" / "ood_scores.png" and png.format == "PNG" and png.width > 300


def test_evaluate_command_with_ood_prints_the_line_and_writes_the_histogram(capsys, monkeypatch, tiny_run_dir: Path, tmp_path: Path) -> None:
    other_photos(tmp_path / "ood")
    data = tl.load(tiny_run_dir).meta["data"]["root"]
    monkeypatch.setenv("COLUMNS", "250")  # one line per sentence
    code, out, err = cli(capsys, monkeypatch, "evaluate", tiny_run_dir, data, "--ood", tmp_path / "ood", "--out", tmp_path / "ev", "-q", "--precision", "fp32")
    assert code == 0, err
    line = next((x for x in out.splitlines() if x.startswith("out of distribution")), "")
    assert line.startswith("out of distribution (12 images): knn AUROC ") and "FPR95" in line and "(max softmax: AUROC" in line, out
    assert (tmp_path / "ev" / "ood_scores.png").stat().st_size > 0
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())["ood"]
    assert f"AUROC {saved['auroc']:.3f}, FPR95 {saved['fpr95']:.3f}" in line  # the printed numbers are the saved ones


def test_a_run_with_the_energy_score_predicts_and_rejects(photo_folder: Path, tiny_weights: Path, tmp_path: Path) -> None:
    trained = tl.train(tl.load_dataset(photo_folder), TINY, weights=tiny_weights, out=tmp_path / "run", precision="fp32", ood_score="energy")
    run = tl.load(tmp_path / "run")  # what model.json keeps
    conf = run.confidence
    assert conf.method == trained.confidence.method == "energy" and conf.rejects and conf.threshold == trained.confidence.threshold
    photos = sorted(photo_folder.rglob("*.jpg"))
    noise = other_photos(tmp_path / "ood")[6:]
    results = run.predict(photos + noise, k=1, precision="fp32")
    scored = run.predict_scored(photos + noise, precision="fp32")
    for r, logits in zip(results, scored.logits):
        t = conf.temperature
        by_hand = t * math.log(sum(math.exp(v / t) for v in np.asarray(logits, dtype=np.float64)))  # T·logsumexp(logits / T)
        assert r["score"] == pytest.approx(by_hand, rel=1e-4, abs=1e-4)
        assert r["in_distribution"] == (r["score"] >= conf.threshold) and (r["label"] is None) == (not r["in_distribution"])
        assert r["closest"] == r["top"][0]["label"]  # the closest guess is kept when rejected
    inside, outside = results[: len(photos)], results[len(photos):]
    assert all(r["label"] is None for r in outside)  # noise: "none of these", every one
    assert sum(r["label"] == Path(r["path"]).parent.name for r in inside) >= len(photos) // 2  # the classes' own photos: mostly accepted, rightly
    assert max(r["score"] for r in outside) < min(r["score"] for r in inside)
    assert torch.equal(torch.as_tensor(scored.accepted), torch.as_tensor([r["in_distribution"] for r in results]))
