"""The seeded stratified split, Dataset.drop, counts and fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferlab.data import Skipped, load_dataset, stratified_split
from transferlab.errors import DataError


@pytest.fixture
def balanced(tmp_path: Path, make_image) -> Path:
    """Classes of 20, 10 and 3 images."""
    for name, n in (("a", 20), ("b", 10), ("c", 3)):
        for i in range(n):
            make_image(tmp_path / "d" / name / f"{i:02d}.jpg", seed=i)
    return tmp_path / "d"


def _assignment(ds) -> dict[str, str]:
    return {s.path.relative_to(ds.root).as_posix(): s.split for s in ds.samples}


def test_stratified_proportions_per_class(balanced: Path) -> None:
    counts = load_dataset(balanced, val_frac=0.1, test_frac=0.2).counts()
    assert counts["a"] == {"train": 14, "val": 2, "test": 4}
    assert counts["b"] == {"train": 7, "val": 1, "test": 2}
    assert counts["c"] == {"train": 2, "val": 0, "test": 1}  # round half up: 0.6 -> 1, 0.3 -> 0


def test_zero_val_frac_gives_no_val_split(balanced: Path) -> None:
    ds = load_dataset(balanced, val_frac=0, test_frac=0.25)
    assert ds.split("val") == [] and len(ds.split("test")) == 5 + 3 + 1


def test_every_class_keeps_a_training_image() -> None:
    split = stratified_split({"x": [Path("1"), Path("2")]}, val_frac=0.45, test_frac=0.5, seed=3)
    assert sorted(split.values()) == ["test", "train"]


def test_same_seed_same_split_different_seed_different(balanced: Path) -> None:
    first = _assignment(load_dataset(balanced, seed=0))
    assert _assignment(load_dataset(balanced, seed=0)) == first
    assert _assignment(load_dataset(balanced, seed=1)) != first


def test_split_ignores_listing_order() -> None:
    paths = [Path(f"{i}.jpg") for i in range(30)]
    forward = stratified_split({"a": paths}, 0.1, 0.2, seed=5)
    assert stratified_split({"a": paths[::-1]}, 0.1, 0.2, seed=5) == forward


def test_adding_a_class_leaves_other_classes_split_alone() -> None:
    a = [Path(f"a/{i}.jpg") for i in range(30)]
    alone = stratified_split({"a": a}, 0.1, 0.2, seed=0)
    with_b = stratified_split({"a": a, "b": [Path(f"b/{i}.jpg") for i in range(9)]}, 0.1, 0.2, seed=0)
    assert {p: with_b[p] for p in a} == alone


def test_bad_fractions_and_seed(balanced: Path) -> None:
    with pytest.raises(DataError, match="test_frac in \\[0, 1\\)"):
        load_dataset(balanced, test_frac=1.5)
    with pytest.raises(DataError, match="seed >= 0"):
        load_dataset(balanced, seed=-1)
    with pytest.raises(DataError, match="expected a split in train, val, test"):
        load_dataset(balanced).split("holdout")


def test_samples_are_sorted_and_labels_index_classes(balanced: Path) -> None:
    ds = load_dataset(balanced)
    assert [s.path for s in ds.samples] == sorted(s.path for s in ds.samples)
    assert all(ds.classes[s.label] == s.path.parent.name for s in ds.samples)


def test_fingerprint_is_stable_and_changes_when_a_file_is_added(balanced: Path, make_image) -> None:
    before = load_dataset(balanced).fingerprint()
    assert load_dataset(balanced).fingerprint() == before and len(before) == 16
    make_image(balanced / "c" / "new.jpg", seed=99)
    assert load_dataset(balanced).fingerprint() != before


def test_fingerprint_does_not_depend_on_where_the_folder_lives(balanced: Path, tmp_path: Path) -> None:
    before = load_dataset(balanced).fingerprint()
    moved = balanced.rename(tmp_path / "elsewhere")
    assert load_dataset(moved).fingerprint() == before


def test_drop_moves_samples_to_skipped_with_reasons(balanced: Path) -> None:
    ds = load_dataset(balanced)
    original = ds.samples
    a0, b0 = ds.samples[0].path, ds.samples[-1].path
    dropped = ds.drop({a0: "cannot decode: image file is truncated", Path("/not/a/sample.jpg"): "x"})
    assert dropped == [Skipped(a0, "cannot decode: image file is truncated")]
    ds.drop([str(b0)], reason="cannot decode: broken data stream")
    assert a0 not in {s.path for s in ds.samples} and b0 not in {s.path for s in ds.samples}
    assert [s.path for s in ds.skipped] == sorted([a0, b0])
    assert len(original) == len(ds.samples) + 2  # the old list is untouched: callers may index it


def test_evaluation_split_takes_test_then_val_then_all(balanced: Path) -> None:
    ds = load_dataset(balanced, val_frac=0.1, test_frac=0.2)
    assert ds.evaluation_split()[1] == "test" and ds.evaluation_split("val")[1] == "val"
    only_train = load_dataset(balanced, val_frac=0.0, test_frac=0.0)
    samples, name = only_train.evaluation_split("auto")
    assert name == "all" and len(samples) == 33
    with pytest.raises(DataError, match="test split .* is empty"):
        only_train.evaluation_split("test")


def test_a_recorded_dataset_loads_again_with_the_same_splits(balanced: Path) -> None:
    from transferlab.data import load_recorded

    ds = load_dataset(balanced, val_frac=0.2, test_frac=0.3, seed=7)
    record = {"root": str(ds.root), "layout": ds.layout, "label": ds.label, "split_options": ds.split_options}
    assert _assignment(load_recorded(record)) == _assignment(ds)
    with pytest.raises(DataError, match="is gone"):
        load_recorded({**record, "root": str(balanced.parent / "moved")})
