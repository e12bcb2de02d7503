"""load_dataset on the real shared Oxford-IIIT Pet mini set (skipped where it is not installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferlab.data import check_dataset, load_dataset, open_rgb

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / ".." / "shared" / "data" / "oxford-iiit-pet-mini"

pytestmark = pytest.mark.skipif(
    not (MINI / "annotations" / "list.txt").is_file(),
    reason=f"shared Oxford mini data not found at {MINI.resolve()} (only on the project's machines)",
)


def test_oxford_mini_layout_classes_split_and_skipped() -> None:
    ds = load_dataset(MINI)
    assert ds.layout == "oxford" and ds.given_split and ds.label == "breed"
    assert ds.classes == ["Abyssinian", "Bengal", "american_bulldog"]
    assert ds.species == {"Abyssinian": "cat", "Bengal": "cat", "american_bulldog": "dog"}
    assert (len(ds.split("train")), len(ds.split("val")), len(ds.split("test"))) == (300, 0, 298)
    reasons = {s.path.name: s.reason for s in ds.skipped}
    assert {n for n, r in reasons.items() if r == "not an image (MATLAB .mat file)"} == {
        "Abyssinian_100.mat", "Abyssinian_101.mat", "Abyssinian_102.mat"}
    # the 600 photos include two that annotations/list.txt (598 lines) does not list
    assert {n for n, r in reasons.items() if "not listed" in r} == {"Abyssinian_34.jpg", "Abyssinian_82.jpg"}
    assert len(reasons) == 5


def test_oxford_mini_odd_files_decode_and_everything_checks() -> None:
    images = (MINI / "images").resolve()
    assert open_rgb(images / "Abyssinian_34.jpg").mode == "RGB"  # a GIF named .jpg (unlisted, but readable)
    png = open_rgb(images / "Abyssinian_5.jpg")  # an RGBA PNG named .jpg, in the test split
    assert png.mode == "RGB" and any(s.path.name == "Abyssinian_5.jpg" for s in load_dataset(MINI).split("test"))
    ds = check_dataset(MINI)
    assert len(ds.samples) == 598 and len(ds.skipped) == 5


def test_oxford_mini_species_labels() -> None:
    ds = load_dataset(MINI, label="species")
    assert ds.classes == ["cat", "dog"] and ds.species is None
    assert {c: sum(n.values()) for c, n in ds.counts().items()} == {"cat": 398, "dog": 200}
