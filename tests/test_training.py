"""The split rule: the reported split is never used to fit, refit or choose, in every layout and strategy.

The test that keeps it true: photos whose labels are assigned at random carry no information, so an
honest held-out score is near chance (0.25 for 4 classes). A leak shows up as high accuracy, because the
head, given a weak L2 and fewer images than feature dimensions, memorises whatever it is fitted on: the
test checks that it does on its own training images, so a leak could not hide.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import transferlab as tl
from transferlab.data.roles import split_roles
from transferlab.train import FinetuneConfig, ProbeConfig

from .conftest import TINY

CLASSES = ("a", "b", "c", "d")
MEMORISE = ProbeConfig(l2_grid=(1e-4,), max_iter=200)  # weak L2: whatever the head is fitted on, it learns by heart
ONE_EPOCH = FinetuneConfig(epochs=1, batch_size=16, warmup_epochs=0, lr=1e-3, ema_epochs=0)
LAYOUTS = {  # split folders -> images per split
    "train+val": {"train": 96, "val": 48},
    "train+val+test": {"train": 96, "val": 32, "test": 48},
    "train+test": {"train": 96, "test": 48},
    "no split": {"": 160},
}


def _noise(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)


def random_labels(root: Path, splits: dict[str, int], seed: int = 0) -> Path:
    """Noise images, each filed under a class drawn at random: nothing in a photo tells its label."""
    rng = np.random.default_rng(seed)
    k = 0
    for split, n in splits.items():
        labels = np.resize(np.arange(len(CLASSES)), n)  # balanced, then shuffled: chance is 1/4 exactly
        for label in rng.permutation(labels):
            _noise(root / split / CLASSES[label] / f"{k}.png", seed=1000 * seed + k)
            k += 1
    return root


@pytest.mark.parametrize("strategy", ["probe", "finetune"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_random_labels_score_near_chance_on_the_reported_split(layout: str, strategy: str, tiny_weights: Path, tmp_path: Path) -> None:
    root = random_labels(tmp_path / "data", LAYOUTS[layout])
    ds = tl.load_dataset(root, val_frac=0.2, test_frac=0.3)
    run = tl.train(ds, TINY, strategy, weights=tiny_weights, precision="fp32", probe=MEMORISE, finetune_config=dataclasses.replace(ONE_EPOCH, min_win_rate=0.0), cache_dir=tmp_path / "cache")
    m = run.record.metrics
    expected = {"train+val": "val"}.get(layout, "test")
    assert m["split"] == expected and m["held_out"] is True and "seen_in_training" not in m
    assert m["accuracy"] < 0.5, f"{layout} {strategy}: {m['accuracy']:.3f} on random labels — the reported split leaked into training"
    fitted = run.evaluate(ds, "train", cache_dir=tmp_path / "cache")
    assert fitted.accuracy > 0.9  # the head does memorise what it is fitted on: a leak would show above
    assert fitted.metrics["seen_in_training"] == fitted.metrics["n"]  # and evaluate knows those images were seen


def test_roles_follow_the_layout(tmp_path: Path) -> None:
    for layout, splits in LAYOUTS.items():
        ds = tl.load_dataset(random_labels(tmp_path / layout, splits), val_frac=0.2, test_frac=0.3)
        roles = split_roles(ds)
        assert roles.report_split == {"train+val": "val"}.get(layout, "test")
        assert not {s.path for s in roles.report} & {s.path for s in roles.train + roles.val}
        assert bool(roles.val) == (layout in ("train+val+test", "no split"))


def test_the_record_names_every_phase_and_the_images_it_saw(tiny_weights: Path, tmp_path: Path) -> None:
    root = random_labels(tmp_path / "data", LAYOUTS["train+val"])
    ds = tl.load_dataset(root)
    tl.train(ds, TINY, "finetune", weights=tiny_weights, precision="fp32", finetune_config=ONE_EPOCH, out=tmp_path / "run", cache_dir=tmp_path / "cache")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["record_version"] == 4 and meta["metrics"]["held_out"] is True and meta["metrics"]["split"] == "val"
    phases = {p["name"]: p for p in meta["phases"]}
    assert set(phases) == {"head", "finetune", "head refit"}
    assert phases["finetune"]["fit"] + phases["finetune"]["choose"] == 96 and phases["finetune"]["choose_from"] == "holdout of train"
    assert phases["head"]["choose_from"] == phases["head refit"]["choose_from"] == "holdout of train"  # val here is the reported split
    assert phases["head refit"]["fit"] == 96 and len(phases["head refit"]["fit_hashes"]) == 96
    # Renamed copies of the training images are recognised by content; held-out ones are not.
    moved = tmp_path / "moved"
    for i, s in enumerate(ds.split("train")[:10] + ds.split("val")[:6]):
        (moved / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)  # labels do not matter here, only contents
        (moved / "ab"[i % 2] / f"renamed-{i}.png").write_bytes(s.path.read_bytes())
    result = tl.load(tmp_path / "run").evaluate(tl.load_dataset(moved, val_frac=0, test_frac=0), "all", cache_dir=tmp_path / "cache")
    assert result.metrics["seen_in_training"] == 10 and result.metrics["unseen"]["n"] == 6


def test_training_leaves_the_callers_dataset_as_it_was(tiny_weights: Path, tmp_path: Path) -> None:
    root = random_labels(tmp_path / "data", LAYOUTS["train+test"])
    (root / "train" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # passes the header sniff, fails to decode
    ds = tl.load_dataset(root)
    before = dataclasses.replace(ds, samples=list(ds.samples), skipped=list(ds.skipped), warnings=list(ds.warnings))
    run = tl.train(ds, TINY, weights=tiny_weights, precision="fp32", cache_dir=tmp_path / "cache")
    assert ds == before
    assert any("broken.png" in f["path"] for f in run.record.data["skipped_files"])


def test_runs_saved_by_0_1_still_load_and_predict_the_same(tiny_weights: Path, tmp_path: Path, photo_folder: Path) -> None:
    run = tl.train(tl.load_dataset(photo_folder), TINY, weights=tiny_weights, precision="fp32", out=tmp_path / "run", cache_dir=tmp_path / "cache")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    for key in ("record_version", "phases", "kept", "decision", "digests"):  # what 0.1 did not write
        meta.pop(key, None)
    (tmp_path / "run" / "digests.json").unlink()
    meta["serve"] = {"unsure_below": 0.7}  # and a field this version reads but does not model
    (tmp_path / "run" / "model.json").write_text(json.dumps(meta))
    old = tl.load(tmp_path / "run")
    assert old.record.kept == "probe" and old.record.record_version == 1 and old.meta["serve"] == {"unsure_below": 0.7}
    paths = sorted(photo_folder.rglob("*.jpg"))
    assert old.predict(paths) == run.predict(paths)


def test_auto_keeps_the_probe_when_fine_tuning_cannot_pay_and_says_why(photo_folder: Path, tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = tl.load_dataset(photo_folder)  # colour-coded classes: the probe is right on every validation image
    run = tl.train(ds, TINY, "auto", weights=tiny_weights, precision="fp32", finetune_config=ONE_EPOCH, cache_dir=tmp_path / "cache")
    assert run.record.kept == "probe" and run.record.finetune is None and "under 1,000" in run.record.decision  # too few images to try
    monkeypatch.setattr("transferlab.run.decisions.AUTO_HINT_MIN_IMAGES", 10)  # 1,000 in use: 10 keeps the test fast
    run = tl.train(ds, TINY, "auto", weights=tiny_weights, precision="fp32", finetune_config=ONE_EPOCH, cache_dir=tmp_path / "cache")
    assert run.record.kept == "probe" and run.record.finetune is None and "every validation image" in run.record.decision


def test_a_probe_run_suggests_auto_only_where_fine_tuning_could_win(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("transferlab.run.decisions.AUTO_HINT_MIN_IMAGES", 100)  # 1,000 in use: 100 keeps the test fast
    large = random_labels(tmp_path / "large", {"train": 100, "test": 8})  # the probe errs on most validation images
    run = tl.train(tl.load_dataset(large), TINY, weights=tiny_weights, precision="fp32", cache_dir=tmp_path / "cache", out=tmp_path / "run")
    hint = run.record.decision or ""
    assert "--strategy auto" in hint and "of 20 validation images wrong" in hint and "over 100 images" in hint
    assert tl.load(tmp_path / "run").record.decision == hint  # model.json keeps it
    small = random_labels(tmp_path / "small", {"train": 96, "test": 8})  # as hard, but too few images for fine-tuning to have won
    assert tl.train(tl.load_dataset(small), TINY, weights=tiny_weights, precision="fp32", cache_dir=tmp_path / "cache").record.decision is None


def _epochs_take_one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """A monotonic clock that moves by exactly 1 s per fine-tuning epoch and not otherwise, for every
    transferlab module that reads the time: what a budget decides then no longer depends on this machine."""
    import importlib
    import sys
    import time

    finetune = importlib.import_module("transferlab.train.finetune")  # (tl.train, the function, hides the package)
    assert callable(tl.train)  # resolving it imports the training modules, so the loop below finds them all
    now = [1000.0]

    class Clock:  # the time module, but its monotonic clock is the test's
        def __getattr__(self, name: str):
            return getattr(time, name)

        @staticmethod
        def monotonic() -> float:
            return now[0]

    for module in [m for name, m in list(sys.modules.items()) if name.startswith("transferlab.") and getattr(m, "time", None) is time]:
        monkeypatch.setattr(module, "time", Clock())
    real_epoch = finetune.train_one_epoch

    def one_second_epoch(*args, **kwargs):
        row = real_epoch(*args, **kwargs)
        now[0] += 1.0
        return row

    monkeypatch.setattr(finetune, "train_one_epoch", one_second_epoch)


def test_a_time_budget_ends_fine_tuning(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = random_labels(tmp_path / "data", LAYOUTS["train+test"])
    config = dataclasses.replace(ONE_EPOCH, epochs=50, patience=50, batch_size=8)
    _epochs_take_one_second(monkeypatch)
    monkeypatch.setattr("transferlab.run.decisions.AUTO_HINT_MIN_IMAGES", 10)  # auto fine-tunes from 1,000 images; 10 keeps the test fast
    run = tl.train(tl.load_dataset(root), TINY, "auto", weights=tiny_weights, precision="fp32", finetune_config=config, budget=1.5, cache_dir=tmp_path / "cache")
    tuned = run.record.finetune
    # epoch 1 ends at 1 s; a second, judged by the first one's length, would end at 2 s > 1.5: not started
    assert tuned["over_budget"] is True and [row["epoch"] for row in tuned["history"]] == [0, 1]
    assert "time budget" in run.record.decision
    with pytest.raises(tl.ConfigError, match="budget"):
        tl.train(tl.load_dataset(root), TINY, "auto", weights=tiny_weights, budget=0)


def test_the_task_in_words_comes_from_the_run() -> None:
    from transferlab.run.record import RunRecord

    def task(data, classes, **kw):
        return RunRecord(backbone={}, strategy=kw.get("strategy", "probe"), data=data, species=kw.get("species")).task(classes)

    assert task({"root": "/x/clothing", "layout": "folder"}, list("abcdefghij")) == "clothing: which of the 10 classes is it?"
    assert task({"root": "/x/PetImages", "layout": "petimages"}, ["Cat", "Dog"]) == "PetImages: Cat or Dog?"
    assert task({"root": "/x/oxford", "layout": "oxford", "label": "breed"}, ["Abyssinian", "Bengal", "pug"]) == "Pet nursery: which breed is it?"
    assert task({"root": "/x/oxford", "layout": "oxford", "label": "species"}, ["cat", "dog"]) == "Cat or dog?"
    assert task(None, ["x"] * 1000, strategy="pretrained") == "Which of the 1000 ImageNet classes is it?"


def test_the_threshold_accepts_the_stated_share_of_validation_images_and_never_sees_test(tiny_weights: Path, tmp_path: Path) -> None:
    root = random_labels(tmp_path / "data", LAYOUTS["train+val+test"])
    ds = tl.load_dataset(root)
    run = tl.train(ds, TINY, weights=tiny_weights, precision="fp32", cache_dir=tmp_path / "cache", accept=0.9)
    conf = run.confidence
    assert conf.method == "knn" and conf.accept == 0.9 and conf.fitted_on.startswith("val (32 images)")
    val = run.predict_scored([s.path for s in ds.split("val")], precision="fp32", cache_dir=tmp_path / "cache")
    assert 0.9 <= val.accepted.mean() < 0.9 + 1 / 32 + 1e-9
    assert conf.tensors["bank"].shape[0] == 96  # the knn bank: the training images only, never val or test


def test_a_run_saved_before_calibration_predicts_as_before_and_calibrate_adds_it(capsys, monkeypatch, tiny_weights: Path, tmp_path: Path, photo_folder: Path) -> None:
    from .test_cli import cli

    tl.train(tl.load_dataset(photo_folder), TINY, weights=tiny_weights, precision="fp32", out=tmp_path / "run", cache_dir=tmp_path / "cache")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    meta.pop("confidence")
    meta.pop("digests")  # runs from before calibration had no digests either
    meta["record_version"] = 2
    (tmp_path / "run" / "model.json").write_text(json.dumps(meta))
    (tmp_path / "run" / "confidence.safetensors").unlink()
    (tmp_path / "run" / "digests.json").unlink()
    old = tl.load(tmp_path / "run")
    assert old.confidence.temperature == 1.0 and not old.confidence.rejects
    paths = sorted(photo_folder.rglob("*.jpg"))
    rows, scored = old.predict(paths, precision="fp32"), old.predict_scored(paths, precision="fp32")
    raw = np.exp(scored.logits) / np.exp(scored.logits).sum(1, keepdims=True)  # the plain softmax, as before
    assert all(r["in_distribution"] and r["label"] == r["top"][0]["label"] and r["score"] is None for r in rows)
    assert np.allclose([r["prob"] for r in rows], raw.max(1), atol=1e-6)

    code, out, err = cli(capsys, monkeypatch, "predict", tmp_path / "run", photo_folder / "fox", "--cache-dir", tmp_path / "cache")
    assert code == 0 and "none of these" not in out and "calibrate RUN DATA" in err and len(err.strip().splitlines()) == 1
    code, out, _ = cli(capsys, monkeypatch, "calibrate", tmp_path / "run", photo_folder, "--accept", "0.99", "--cache-dir", tmp_path / "cache", "-q")
    assert code == 0 and "knn" in out
    new = tl.load(tmp_path / "run")
    assert new.confidence.rejects and new.confidence.accept == 0.99 and (tmp_path / "run" / "confidence.safetensors").is_file()
