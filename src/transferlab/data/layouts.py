"""Finding a dataset's layout and listing its candidate image files with their class and given split.

Scanning only walks the file tree and reads annotation files; whether an image file decodes is
decided later (``sniff`` on load, ``open_rgb`` on check or extraction).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .._io import display_path
from ..errors import DataError
from .decode import is_ignored, is_image_name, non_image_reason, os_reason

LAYOUTS = ("folder", "oxford", "petimages")
SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
PET_CLASSES = ("Cat", "Dog")
OXFORD_DIR = "oxford-iiit-pet"  # what torchvision's download creates inside its root
PET_DIR = "PetImages"  # what Microsoft's kagglecatsanddogs archive holds

_EXPECTED = (
    "expected a folder of class sub-folders, the Oxford-IIIT Pet layout (images/ + annotations/) "
    "or PetImages (Cat/, Dog/)"
)


@dataclass
class Scan:
    """What a layout scanner found: candidate images (not yet sniffed) and files already ruled out."""

    root: Path  # the dataset folder itself (inside oxford-iiit-pet/ or PetImages/ when given the parent)
    layout: str
    items: list[tuple[Path, str, str | None]] = field(default_factory=list)  # (file, class, given split or None)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)
    class_names: set[str] = field(default_factory=set)  # every class seen, even one left without files
    given_split: bool = False
    species: dict[str, str] | None = None  # oxford breed labels: class -> "cat" / "dog"


def list_dir(folder: Path) -> tuple[list[Path], list[Path]]:
    """Sorted (sub-folders, files) of ``folder``, hidden entries and OS droppings left out.

    Entries that are neither (a broken or looping symbolic link, a socket) count as files, so that the
    header check reports them with a reason instead of their vanishing silently.
    """
    dirs: list[Path] = []
    files: list[Path] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_ignored(entry.name):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:  # ELOOP on some systems: a file-like entry that cannot be followed
                is_dir = False
            (dirs if is_dir else files).append(Path(entry.path))
    return sorted(dirs), sorted(files)


def link_problem(path: Path) -> str | None:
    """The reason a symbolic link cannot be followed (broken, or a loop), else ``None``."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as err:
        return os_reason(err, path)
    return None


def walk_files(folder: Path, problems: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Every file below ``folder`` (recursively, sorted), hidden entries and OS droppings left out.

    Symbolic links to folders are followed (datasets are often assembled from links), each real folder
    once: a link leading back into a folder already walked (a loop) is reported in ``problems``.
    """
    found: list[Path] = []
    seen: dict[tuple[int, int], Path] = {}
    for parent in Path(folder).resolve().parents:  # a link up to an ancestor would walk it all again
        st = parent.stat()
        seen[st.st_dev, st.st_ino] = parent
    for current, dirs, files in os.walk(folder, followlinks=True):
        here = Path(current)
        st = here.stat()
        if (st.st_dev, st.st_ino) in seen:
            if problems is not None:
                problems.append((here, f"symbolic link loop (leads back to {display_path(seen[st.st_dev, st.st_ino])}): not followed"))
            dirs[:] = []
            continue
        seen[st.st_dev, st.st_ino] = here
        dirs[:] = sorted(d for d in dirs if not is_ignored(d))  # prune hidden folders (.git, __MACOSX)
        found.extend(here / f for f in files if not is_ignored(f))
    return sorted(found)


def _oxford_root(path: Path) -> Path | None:
    for root in (path, path / OXFORD_DIR):
        if (root / "images").is_dir() and (root / "annotations").is_dir():
            return root
    return None


def _pet_root(path: Path) -> Path | None:
    for root in (path, path / PET_DIR):
        if root.is_dir() and tuple(d.name for d in list_dir(root)[0]) == PET_CLASSES:
            return root
    return None


def _asked_oxford_root(path: Path) -> Path:
    """The Oxford folder when the layout was named: annotations are optional then, ``images/`` is not."""
    for candidate in (path, path / OXFORD_DIR):
        if (candidate / "images").is_dir():
            return candidate
    raise DataError(f"expected an images/ folder (and annotations/) in {path} for layout 'oxford', got none — check the path")


def _asked_pet_root(path: Path) -> Path:
    """The PetImages folder when the layout was named, whatever its sub-folders."""
    return path / PET_DIR if (path / PET_DIR).is_dir() else path


def detect_layout(path: Path | str, layout: str = "auto") -> tuple[Path, str]:
    """The dataset folder and its layout name.

    Auto-detection tries, in order: Oxford-IIIT Pet (``images/`` + ``annotations/``, also inside
    ``oxford-iiit-pet/``), PetImages (exactly ``Cat/`` and ``Dog/``, also inside ``PetImages/``), then a
    folder of class sub-folders.

    Args:
        path: the folder the user named.
        layout: ``"auto"`` or one of ``LAYOUTS`` to skip detection.

    Returns:
        (absolute dataset folder, layout name).

    Raises:
        DataError: the path is missing, the layout name is unknown, or the folder does not match it.
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise DataError(f"expected layout 'auto' or one of {', '.join(LAYOUTS)}, got {layout!r} — pick one of those")
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        what = "a file" if path.exists() else "a path that does not exist"
        raise DataError(f"{_EXPECTED}; got {what}: {path} — check the path")
    if layout in ("auto", "oxford"):
        root = _oxford_root(path) or (_asked_oxford_root(path) if layout == "oxford" else None)
        if root is not None:
            return root, "oxford"
    if layout in ("auto", "petimages"):
        root = _pet_root(path) or (_asked_pet_root(path) if layout == "petimages" else None)
        if root is not None:
            return root, "petimages"
    if not list_dir(path)[0]:
        raise DataError(f"{_EXPECTED}; got {path}, which has no sub-folders — point at the dataset folder")
    return path, "folder"


def _scan_class_dirs(scan: Scan, class_dirs: list[Path], split: str | None) -> None:
    for class_dir in class_dirs:
        scan.class_names.add(class_dir.name)
        problems: list[tuple[Path, str]] = []
        for file in walk_files(class_dir, problems):
            if is_image_name(file):
                scan.items.append((file, class_dir.name, split))
            else:
                scan.skipped.append((file, link_problem(file) or non_image_reason(file)))
        scan.skipped.extend(problems)


def _skip_loose(scan: Scan, files: list[Path]) -> None:
    # Non-image files next to the class folders (README, labels.csv) are not data: ignore them.
    scan.skipped.extend((f, "image not inside a class folder") for f in files if is_image_name(f))


def scan_folder(root: Path, layout: str = "folder") -> Scan:
    """One sub-folder per class (images found recursively), optionally under train/ val/ test/.

    Raises:
        DataError: split folders are mixed with class folders, or two folders name the same split.
    """
    scan = Scan(root=root, layout=layout)
    dirs, files = list_dir(root)
    split_dirs = [d for d in dirs if d.name.lower() in SPLIT_DIRS]
    _skip_loose(scan, files)
    if not split_dirs:
        _scan_class_dirs(scan, dirs, None)
        return scan
    if len(split_dirs) != len(dirs):
        others = ", ".join(d.name for d in dirs if d not in split_dirs)
        raise DataError(
            f"expected either class folders or train/val/test folders in {root}, got both ({others}) — "
            "move the class folders into a split folder"
        )
    names = [SPLIT_DIRS[d.name.lower()] for d in split_dirs]
    if len(set(names)) != len(names):
        raise DataError(
            f"expected one folder per split in {root}, got {', '.join(d.name for d in split_dirs)} — "
            "merge the folders that name the same split"
        )
    scan.given_split = True
    for split_dir, split in zip(split_dirs, names):
        class_dirs, loose = list_dir(split_dir)
        _skip_loose(scan, loose)
        _scan_class_dirs(scan, class_dirs, split)
    return scan
