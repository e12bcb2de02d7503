"""The audit on hand-made cases: each kind of finding, the fix list and ``train --exclude`` round trip,
the unseen accuracy leaving out near copies, the label rules, and confident learning against cleanlab."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import transferlab as tl
from transferlab.audit import AuditConfig, find_label_issues, low_confidence_issues, neighbour_probabilities, read_paths

from ..conftest import TINY
from ..test_cli import cli

CLASSES = ["cat", "dog", "fox"]


def make_scene(path: Path, hue: int, seed: int, size: tuple[int, int] = (64, 56)) -> Path:
    """A photo-like JPEG: smooth random shapes (the individual photo) over a class colour (``hue``)."""
    rng = np.random.default_rng(seed)
    base = np.array([(hue * 97) % 256, (hue * 53 + 80) % 256, (hue * 191 + 30) % 256], dtype=float)
    shapes = np.asarray(Image.fromarray(rng.integers(0, 255, (7, 8), dtype=np.uint8)).resize(size, Image.BICUBIC), dtype=float)
    pixels = np.clip(base * 0.6 + shapes[..., None] * 0.4 + rng.normal(0, 3, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def _collection(root: Path) -> dict[str, Path]:
    """3 colour classes x (8 train + 3 test) photos, plus one planted problem of each kind."""
    for c, name in enumerate(CLASSES):
        for i in range(11):
            make_scene(root / ("train" if i < 8 else "test") / name / f"{name}_{i}.jpg", c, seed=100 * c + i)
    planted = {
        "exact": root / "test" / "cat" / "copy_of_cat_0.jpg",
        "near": root / "test" / "dog" / "mirrored_dog_1.jpg",
        "label": root / "train" / "fox" / "a_cat_in_the_fox_folder.jpg",
        "outlier": root / "train" / "dog" / "stripes.jpg",
    }
    shutil.copyfile(root / "train" / "cat" / "cat_0.jpg", planted["exact"])
    ImageOps.mirror(Image.open(root / "train" / "dog" / "dog_1.jpg")).resize((58, 50)).save(planted["near"], quality=90)
    make_scene(planted["label"], 0, seed=999)
    stripes = np.zeros((56, 64, 3), np.uint8)
    stripes[:, ::4] = 255
    Image.fromarray(stripes).save(planted["outlier"], quality=95)
    return planted


@pytest.fixture
def collection(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    root = tmp_path / "photos"
    return root, _collection(root)


def test_each_kind_of_finding_is_found_on_a_hand_made_case(collection, tiny_weights: Path, tmp_path: Path) -> None:
    root, planted = collection
    before = sorted(p.stat().st_mtime_ns for p in root.rglob("*"))
    result = tl.audit(tl.load_dataset(root), TINY, weights=tiny_weights, precision="fp32", out=tmp_path / "audit")
    found = {kind: {Path(f.path) for f in result.of(kind)} for kind in result.summary()}
    assert planted["exact"] in found["exact duplicate"]
    exact = result.of("exact duplicate")[0]
    assert Path(exact.partner) == root / "train" / "cat" / "cat_0.jpg" and "train/test leakage" in exact.reason
    assert planted["near"] in found["near duplicate"] and len(result.of("near duplicate")) == 1  # distinct photos are not paired
    label = next(f for f in result.of("label") if Path(f.path) == planted["label"])
    assert label.suggested_label == "cat" and label.label == "fox"
    assert planted["outlier"] in found["outlier"]
    assert result.counts["dog"] == {"train": 9, "val": 0, "test": 4} and not result.clean
    assert sorted(p.stat().st_mtime_ns for p in root.rglob("*")) == before  # the data is never changed
    rows = (tmp_path / "audit" / "audit.csv").read_text().splitlines()
    assert rows[0].startswith("path,finding,score,suggested_label,partner") and len(rows) == len(result.findings) + 1
    saved = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert saved["summary"] == result.summary() and len(saved["findings"]) == len(result.findings)
    html = (tmp_path / "audit" / "audit.html").read_text()
    assert all(f"id='{k}'" in html for k in ("duplicates", "labels", "outliers", "balance")) and "http" not in html


def test_fix_list_and_exclude_round_trip_and_exit_codes(capsys, monkeypatch, collection, tiny_weights: Path, tmp_path: Path) -> None:
    root, planted = collection
    fix = tmp_path / "fix.txt"
    code, out, _ = cli(capsys, monkeypatch, "audit", root, "-b", TINY, "--weights", tiny_weights, "--precision", "fp32", "--out", tmp_path / "a", "--fix-list", fix, "-q")
    assert code == 1 and "exact duplicate" in out and (tmp_path / "a" / "audit.html").is_file()
    listed = set(read_paths(fix))
    assert set(planted.values()) <= listed and root / "train" / "cat" / "cat_0.jpg" not in listed  # the later copy is the one to review
    code, out, _ = cli(capsys, monkeypatch, "train", root, "-b", TINY, "--weights", tiny_weights, "--fp32", "--out", tmp_path / "run", "-q", "--exclude", fix)
    assert code == 0
    data = json.loads((tmp_path / "run" / "model.json").read_text())["data"]
    assert set(map(Path, data["excluded"])) == listed
    assert sum(per["train"] + per["test"] for per in data["counts"].values()) == 33 + 4 - len(listed)
    code, out, _ = cli(capsys, monkeypatch, "audit", root, "-b", TINY, "--weights", tiny_weights, "--out", tmp_path / "b", "--json", "-q")
    assert code == 1 and json.loads(out)["exact duplicate"] == 1
    code, _, err = cli(capsys, monkeypatch, "train", root, "-b", TINY, "--weights", tiny_weights, "--exclude", tmp_path / "nope.txt", "-q")
    assert code == 1 and "audit DATA --fix-list" in err


def test_a_clean_collection_exits_0(capsys, monkeypatch, tiny_weights: Path, tmp_path: Path) -> None:
    root = tmp_path / "clean"
    for c, name in enumerate(CLASSES):
        for i in range(8):
            make_scene(root / name / f"{name}_{i}.jpg", c, seed=100 * c + i)
    code, out, _ = cli(capsys, monkeypatch, "audit", root, "-b", TINY, "--weights", tiny_weights, "--out", tmp_path / "a", "-q")
    assert code == 0 and "0 exact duplicate, 0 near duplicate, 0 label, 0 outlier" in out


def test_unseen_accuracy_leaves_out_exact_and_near_copies_of_training_images(collection, tiny_weights: Path, tmp_path: Path) -> None:
    root, planted = collection
    planted["label"].unlink()
    planted["outlier"].unlink()
    run = tl.train(tl.load_dataset(root), TINY, weights=tiny_weights, precision="fp32", cache_dir=tmp_path / "cache")
    m = run.record.metrics
    assert m["n"] == 11 and m["seen_in_training"] == 1 and m["near_copies_of_training"] == 1
    assert m["unseen"]["n"] == 9 and m["unseen"]["left_out"] == 2
    again = run.evaluate(tl.load_dataset(root), cache_dir=tmp_path / "cache").report
    assert again["unseen"] == m["unseen"]


def test_near_duplicates_tell_edits_from_other_photos(tmp_path: Path) -> None:
    from transferlab.audit.pixels import verify

    base = make_scene(tmp_path / "a.jpg", 1, seed=1, size=(96, 80))
    other = make_scene(tmp_path / "b.jpg", 1, seed=2, size=(96, 80))  # same class, another photo
    image = Image.open(base)
    edits = [ImageOps.mirror(image), image.resize((67, 56)), image.crop((5, 4, 91, 76)), image.convert("L").convert("RGB")]
    paths = [base, other]
    for i, e in enumerate(edits):
        e.save(tmp_path / f"e{i}.jpg", quality=60)
        paths.append(tmp_path / f"e{i}.jpg")
    scores = verify(paths, [(0, j) for j in range(1, len(paths))])
    assert scores[(0, 1)] < 0.5
    assert all(scores[(0, j)] >= AuditConfig().near_duplicate for j in range(2, len(paths))), scores


@pytest.mark.filterwarnings("ignore::UserWarning")  # cleanlab's "too few examples" on small random classes
def test_confident_learning_flags_what_cleanlab_flags() -> None:
    cleanlab = pytest.importorskip("cleanlab.filter", reason="cleanlab (dev extra) is not installed")
    rng = np.random.default_rng(0)
    same = total = 0
    for _ in range(60):
        n, k = int(rng.integers(30, 300)), int(rng.integers(2, 12))
        y = rng.integers(0, k, n)
        y[:k] = np.arange(k)
        logits = rng.normal(0, 1, (n, k))
        logits[np.arange(n), y] += rng.uniform(0, 4)
        noisy = np.where(rng.random(n) < 0.1, rng.integers(0, k, n), y)
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        ours, ref = find_label_issues(noisy, probs), cleanlab.find_label_issues(noisy, probs, n_jobs=1)
        same += int((ours == ref).sum())
        total += n
    assert same / total > 0.999  # one image in 200 random problems differed when this was written


def test_neighbour_vote_leaves_the_image_out_and_weights_near_copies() -> None:
    labels = np.array([0, 0, 1, 1])
    sims = np.array([[0.99, 0.5], [0.99, 0.5], [0.9, 0.9], [0.9, 0.9]], np.float32)
    idx = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    p = neighbour_probabilities(labels, (sims, idx), 2, k=2)
    assert np.allclose(p.sum(1), 1.0)
    assert p[0, 0] > 0.99  # its near copy (0.99, class 0) outweighs a distant class-1 image (0.5)
    assert abs(p[2, 0] - p[2, 1]) < 1e-9  # two neighbours equally near, one of each class: a tie
    k1 = neighbour_probabilities(labels, (sims, idx), 2, k=1)
    assert k1[2].argmax() == 1 and k1[0].argmax() == 0  # only the nearest votes with k=1


def test_relative_rule_flags_only_images_far_below_their_class() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.05, 0.95],  # the 4th: labelled 0, 0.05 for class 0
                      [0.4, 0.6], [0.45, 0.55], [0.4, 0.6], [0.6, 0.4]])  # class 1 is hard: no image far below it
    flags = low_confidence_issues(labels, probs, fraction=0.15)  # class 0's typical 0.69 -> flag below 0.10
    assert flags.tolist() == [False, False, False, True, False, False, False, False]
    assert low_confidence_issues(labels, probs, fraction=0.9)[7]  # a looser rule reaches the hard class's doubtful one
    three = np.array([[0.95, 0.03, 0.02]] * 3 + [[0.4, 0.3, 0.3], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    flags = low_confidence_issues(np.array([0, 0, 0, 0, 1, 2]), three, fraction=0.5)  # 0.4 < 0.5 x 0.81 for class 0,
    assert not flags.any()  # but its label is still the most probable one: not flagged


def test_confident_learning_rule_is_one_option_away(monkeypatch, collection, tiny_weights: Path, tmp_path: Path) -> None:
    core = importlib.import_module("transferlab.audit.core")
    root, planted = collection
    used = []
    for name in ("find_label_issues", "low_confidence_issues"):
        real = getattr(core, name)
        monkeypatch.setattr(core, name, lambda *a, _real=real, _name=name, **k: used.append(_name) or _real(*a, **k))
    ds = tl.load_dataset(root)
    result = tl.audit(ds, TINY, weights=tiny_weights, precision="fp32", config=AuditConfig(label_rule="confident_learning"), cache_dir=tmp_path / "c")
    assert used == ["find_label_issues"] and result.thresholds["label_rule"] == "confident_learning"
    assert planted["label"] in {Path(f.path) for f in result.of("label")}
    used.clear()
    tl.audit(ds, TINY, weights=tiny_weights, precision="fp32", cache_dir=tmp_path / "c")
    assert used == ["low_confidence_issues"]  # the default


def test_audit_config_rejects_an_unknown_label_rule() -> None:
    with pytest.raises(tl.ConfigError, match="label_rule must be one of relative, confident_learning"):
        AuditConfig(label_rule="cleanlab")
    with pytest.raises(tl.ConfigError, match="label_fraction"):
        AuditConfig(label_fraction=1.5)
