"""Each layout is detected and parsed; unusable files are reported, hidden ones ignored; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferlab.data import check_dataset, load_dataset
from transferlab.errors import DataError


def _names(paths) -> list[str]:
    return sorted(p.name for p in paths)


def test_flat_folder_recursive_with_hidden_and_junk_files(tmp_path: Path, make_image) -> None:
    root = tmp_path / "photos"
    for c, name in enumerate(["dog", "cat"]):
        for i in range(5):
            make_image(root / name / f"{i}.jpg", seed=10 * c + i)
    make_image(root / "cat" / "nested" / "deep.png", fmt="PNG")  # nested images count
    make_image(root / "cat" / "._0.jpg")  # macOS resource fork: hidden
    make_image(root / ".cache" / "x.jpg")  # hidden folder: not a class
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    (root / "dog" / "Thumbs.db").write_bytes(b"\0")
    (root / "dog" / "notes.txt").write_text("hi")
    (root / "README.md").write_text("not data")  # next to the class folders: ignored
    ds = load_dataset(root)
    assert ds.layout == "folder" and ds.label == "class" and ds.classes == ["cat", "dog"]
    assert not ds.given_split and ds.species is None and ds.root == root.resolve()
    assert len(ds.samples) == 11 and all(s.path.is_absolute() for s in ds.samples)
    assert [(s.path.name, s.reason) for s in ds.skipped] == [("notes.txt", "not an image (text file)")]
    assert ds.counts()["cat"]["train"] + ds.counts()["cat"]["val"] + ds.counts()["cat"]["test"] == 6


def test_folder_with_given_split_dirs(tmp_path: Path, make_image) -> None:
    root = tmp_path / "d"
    for split_dir, n in (("train", 4), ("Validation", 2), ("test", 3)):
        for name in ("a", "b"):
            for i in range(n):
                make_image(root / split_dir / name / f"{i}.jpg", seed=i)
    ds = load_dataset(root, val_frac=0.5, test_frac=0.4)  # fractions do not apply to a given split
    assert ds.given_split and ds.classes == ["a", "b"]
    assert ds.counts() == {c: {"train": 4, "val": 2, "test": 3} for c in ("a", "b")}


def test_train_test_without_val_is_not_carved(tmp_path: Path, make_image) -> None:
    for split_dir in ("train", "test"):
        for name in ("a", "b"):
            for i in range(3):
                make_image(tmp_path / split_dir / name / f"{i}.jpg", seed=i)
    ds = load_dataset(tmp_path)
    assert ds.given_split and ds.split("val") == [] and len(ds.split("train")) == 6


def test_split_dirs_mixed_with_class_dirs_is_an_error(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "train" / "a" / "0.jpg")
    make_image(tmp_path / "cat" / "0.jpg")
    with pytest.raises(DataError, match="got both"):
        load_dataset(tmp_path)


def test_oxford_layout_parsed_with_paper_split(oxford_root: Path) -> None:
    ds = load_dataset(oxford_root.parent)  # the folder torchvision downloads into also works
    assert ds.layout == "oxford" and ds.root == oxford_root.resolve() and ds.given_split
    assert ds.label == "breed" and ds.classes == ["Abyssinian", "Bengal", "american_bulldog"]
    assert ds.species == {"Abyssinian": "cat", "Bengal": "cat", "american_bulldog": "dog"}
    assert ds.counts()["Abyssinian"] == {"train": 4, "val": 0, "test": 2}
    names = _names(s.path for s in ds.samples)
    assert "Abyssinian_1.jpg" in names and "Abyssinian_2.jpg" in names  # GIF and RGBA PNG named .jpg
    reasons = {s.path.name: s.reason for s in ds.skipped}
    assert reasons == {
        "Abyssinian_1.mat": "not an image (MATLAB .mat file)",
        "Abyssinian_7.jpg": "not listed in annotations/list.txt (no label)",
        "Bengal_9.jpg": "listed in annotations but file is missing",
    }


def test_oxford_species_labels(oxford_root: Path) -> None:
    ds = load_dataset(oxford_root, label="species")
    assert ds.label == "species" and ds.classes == ["cat", "dog"] and ds.species is None
    assert {c: sum(n.values()) for c, n in ds.counts().items()} == {"cat": 12, "dog": 6}


def test_oxford_without_annotation_files_labels_by_name(oxford_root: Path) -> None:
    for name in ("list.txt", "trainval.txt", "test.txt"):
        (oxford_root / "annotations" / name).unlink()
    ds = load_dataset(oxford_root, val_frac=0, test_frac=0.5)
    assert not ds.given_split and ds.species is None
    assert sum(ds.counts()["Abyssinian"].values()) == 7  # Abyssinian_7 is usable now
    with pytest.raises(DataError, match="species"):
        load_dataset(oxford_root, label="species")


def test_petimages_with_broken_files(tmp_path: Path, make_image) -> None:
    root = tmp_path / "PetImages"
    for c, name in enumerate(["Cat", "Dog"]):
        for i in range(3):
            make_image(root / name / f"{i}.jpg", seed=10 * c + i)
    (root / "Cat" / "666.jpg").write_bytes(b"")
    (root / "Dog" / "11702.jpg").write_bytes(bytes(range(256)) * 8)
    (root / "Dog" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    ds = load_dataset(tmp_path)  # the folder containing PetImages/
    assert ds.layout == "petimages" and ds.classes == ["Cat", "Dog"] and len(ds.samples) == 6
    reasons = {s.path.name: s.reason for s in ds.skipped}
    assert reasons["666.jpg"] == "empty file (0 bytes)" and "not an image" in reasons["11702.jpg"]
    assert len(reasons) == 2


def test_explicit_layout_overrides_detection(tmp_path: Path, make_image) -> None:
    for name in ("Cat", "Dog"):
        for i in range(2):
            make_image(tmp_path / name / f"{i}.jpg", seed=i)
    assert load_dataset(tmp_path).layout == "petimages"
    assert load_dataset(tmp_path, layout="folder").layout == "folder"
    with pytest.raises(DataError, match="expected an images/ folder"):
        load_dataset(tmp_path, layout="oxford")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"layout": "coco"}, "expected layout 'auto' or one of folder, oxford, petimages"),
     ({"label": "colour"}, "expected label in breed, species"),
     ({"label": "species"}, "Oxford-IIIT Pet layout for label 'species'"),
     ({"val_frac": 0.5, "test_frac": 0.5}, "val_frac \\+ test_frac < 1")],
)
def test_bad_arguments_are_one_sentence_errors(tmp_path: Path, make_image, kwargs, match) -> None:
    for name in ("a", "b"):
        for i in range(2):
            make_image(tmp_path / name / f"{i}.jpg", seed=i)
    with pytest.raises(DataError, match=match):
        load_dataset(tmp_path, **kwargs)


def test_one_class_is_an_error(tmp_path: Path, make_image) -> None:
    for i in range(3):
        make_image(tmp_path / "only" / f"{i}.jpg", seed=i)
    with pytest.raises(DataError, match=r"at least 2 classes .* got 1 \(only\)"):
        load_dataset(tmp_path)


def test_class_with_one_usable_image_is_left_out_with_a_warning(tmp_path: Path, make_image) -> None:
    for name in ("many", "more"):
        for i in range(3):
            make_image(tmp_path / name / f"{i}.jpg", seed=i)
    make_image(tmp_path / "few" / "0.jpg")
    (tmp_path / "few" / "1.jpg").write_bytes(b"")  # not usable: still only one image
    (tmp_path / "empty").mkdir()
    ds = load_dataset(tmp_path)
    assert ds.classes == ["many", "more"] and len(ds.samples) == 6
    assert {w.path.name: w.reason for w in ds.warnings if "class" in w.reason} == {
        "empty": "class 'empty' has no image files: left out",
        "few": "class 'few' has 1 usable image (2 or more needed): left out",
    }
    assert {s.path.name: s.reason for s in ds.skipped if s.path.parent.name == "few"} == {
        "0.jpg": "left out with its class 'few'", "1.jpg": "empty file (0 bytes)",
    }


def test_too_few_classes_left_is_an_error_naming_those_left_out(tmp_path: Path, make_image) -> None:
    for i in range(3):
        make_image(tmp_path / "many" / f"{i}.jpg", seed=i)
    make_image(tmp_path / "few" / "0.jpg")
    with pytest.raises(DataError, match=r"got 1 \(many\); left out: few \(has 1 usable image"):
        load_dataset(tmp_path)


@pytest.mark.parametrize("what", ["missing", "empty", "file"])
def test_unusable_paths_are_errors(tmp_path: Path, what: str) -> None:
    path = tmp_path / "data"
    if what == "empty":
        path.mkdir()
    elif what == "file":
        path.write_text("x")
    with pytest.raises(DataError, match="expected a folder of class sub-folders, the Oxford-IIIT Pet layout"):
        load_dataset(path)


def test_check_dataset_moves_a_truncated_jpeg_to_skipped(tmp_path: Path, make_image) -> None:
    for name in ("a", "b"):
        for i in range(3):
            make_image(tmp_path / name / f"{i}.jpg", seed=i, size=(120, 90))
    data = (tmp_path / "a" / "0.jpg").read_bytes()
    (tmp_path / "a" / "0.jpg").write_bytes(data[: len(data) // 2])
    assert len(load_dataset(tmp_path).samples) == 6  # the header looks fine
    calls: list[tuple[int, int]] = []
    ds = check_dataset(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert len(ds.samples) == 5 and calls[-1] == (6, 6)
    assert [(s.path.name, "truncated" in s.reason) for s in ds.skipped] == [("0.jpg", True)]
