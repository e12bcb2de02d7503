"""The Oxford-IIIT Pet layout: ``images/*.jpg`` labelled by ``annotations/list.txt``, split by
``trainval.txt`` / ``test.txt`` (the paper's split).

Annotation lines read ``Image CLASS-ID SPECIES BREED-ID`` (SPECIES 1 = cat, 2 = dog); ``#`` starts a comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError
from .decode import is_image_name, non_image_reason
from .layouts import Scan, list_dir

if TYPE_CHECKING:
    import numpy as np

SPECIES = {1: "cat", 2: "dog"}
_NUMBERED = re.compile(r"(.+)_\d+")


def breed_of(name: str) -> str:
    """Class name from an image name: ``american_bulldog_12`` -> ``american_bulldog``."""
    match = _NUMBERED.fullmatch(name)
    return match.group(1) if match else name


def read_annotations(path: Path) -> dict[str, str | None]:
    """Image name -> species (``"cat"``/``"dog"``, ``None`` when the line has no species column).

    Raises:
        DataError: a line's species column is not 1 or 2.
    """
    entries: dict[str, str | None] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        species = None
        if len(parts) >= 3:
            if parts[2] not in ("1", "2"):
                raise DataError(
                    f"expected SPECIES 1 (cat) or 2 (dog) in column 3 of {path}, got {parts[2]!r} on line {number} "
                    "— fix or remove that line"
                )
            species = SPECIES[int(parts[2])]
        entries[parts[0]] = species
    return entries


def _read_optional(path: Path) -> dict[str, str | None] | None:
    return read_annotations(path) if path.is_file() else None


def scan_oxford(root: Path, label: str) -> Scan:
    """List ``root/images`` with breed or species labels and the paper split when its files exist.

    With ``annotations/list.txt`` present, images it does not list are skipped, and listed names
    without a file are reported as missing; without it every image is used, labelled by its name.

    Args:
        root: the folder holding ``images/`` (and usually ``annotations/``).
        label: ``"breed"`` or ``"species"``.

    Raises:
        DataError: species labels were asked for but some usable image has no species annotation.
    """
    scan = Scan(root=root, layout="oxford")
    notes = _Annotations.read(root / "annotations")
    scan.given_split = notes.given_split
    by_name = _images_by_name(root / "images", scan)
    unlabelled: list[str] = []
    for name, file in by_name.items():
        reason = notes.skip_reason(name)
        if reason is not None:
            scan.skipped.append((file, reason))
            continue
        cls = notes.species_of.get(name) if label == "species" else breed_of(name)
        if cls is None:
            unlabelled.append(name)
            continue
        scan.items.append((file, cls, notes.split_of(name)))
        scan.class_names.add(cls)
    if unlabelled:
        raise DataError(
            f"expected a species for every image in {root / 'annotations'}/list.txt, got {len(unlabelled)} without "
            f"(e.g. {unlabelled[0]}) — use label 'breed', or add annotations/list.txt"
        )
    scan.skipped.extend(
        (root / "images" / f"{name}.jpg", "listed in annotations but file is missing")
        for name in sorted(notes.expected() - set(by_name))
    )
    if label == "breed":
        scan.species = _species_of_breeds(scan, notes.species_of)
    return scan


@dataclass
class _Annotations:
    """What ``annotations/`` says, where its files exist."""

    listed: dict[str, str | None] | None  # list.txt: name -> species (None: no list.txt)
    trainval: set[str]  # names in trainval.txt
    test: set[str]  # names in test.txt
    given_split: bool  # both split files exist
    species_of: dict[str, str | None]  # name -> species, from any of the three files (list.txt wins)

    @classmethod
    def read(cls, folder: Path) -> _Annotations:
        listed, trainval, test = (_read_optional(folder / f) for f in ("list.txt", "trainval.txt", "test.txt"))
        species_of = {**(trainval or {}), **(test or {}), **(listed or {})}
        return cls(listed, set(trainval or ()), set(test or ()), trainval is not None and test is not None, species_of)

    def skip_reason(self, name: str) -> str | None:
        """Why the image ``name`` cannot be used (no label or no split), or None."""
        if self.listed is not None and name not in self.listed:
            return "not listed in annotations/list.txt (no label)"
        if self.given_split and name not in self.trainval and name not in self.test:
            return "not in annotations/trainval.txt or test.txt (no split)"
        return None

    def split_of(self, name: str) -> str | None:
        return ("test" if name in self.test else "train") if self.given_split else None

    def expected(self) -> set[str]:
        """The names the annotations promise an image for."""
        if self.listed is not None:
            return set(self.listed)
        return self.trainval | self.test if self.given_split else set()


def _images_by_name(folder: Path, scan: Scan) -> dict[str, Path]:
    """Image files of ``folder`` by stem; non-images and a second file of the same stem go to ``scan.skipped``."""
    by_name: dict[str, Path] = {}
    for file in list_dir(folder)[1]:
        if not is_image_name(file):
            scan.skipped.append((file, non_image_reason(file)))
        elif file.stem in by_name:
            scan.skipped.append((file, f"another image has the same name ({by_name[file.stem].name})"))
        else:
            by_name[file.stem] = file
    return by_name


def _species_of_breeds(scan: Scan, species_of: dict[str, str | None]) -> dict[str, str] | None:
    """Breed -> species when every breed has an image with a species annotation, else None."""
    found: dict[str, str | None] = {cls: None for cls in sorted(scan.class_names)}
    for file, cls, _ in scan.items:
        found[cls] = found[cls] or species_of.get(file.stem)
    return {k: v for k, v in found.items() if v} if found and all(found.values()) else None


# -- localisation annotations (trimaps and head boxes), for scoring where a model looks --------------------
TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3  # pixel values of annotations/trimaps/*.png


def read_trimap(root: Path, name: str) -> "np.ndarray | None":
    """The pixel-level trimap of image ``name`` (1 pet, 2 background, 3 unclassified border), or None.

    Shape:
        (H, W) uint8, the photo's size.
    """
    import numpy as np
    from PIL import Image

    path = root / "annotations" / "trimaps" / f"{name}.png"
    if not path.is_file():
        return None
    with Image.open(path) as img:
        return np.asarray(img.convert("L"), dtype=np.uint8)


def read_head_boxes(root: Path, name: str) -> list[tuple[float, float, float, float]] | None:
    """Head boxes ``(xmin, ymin, xmax, ymax)`` in photo pixels from ``annotations/xmls/NAME.xml``, or None.

    The Oxford set annotates heads for the trainval images only; test images have no xml.

    Raises:
        DataError: the file exists but is not a readable PASCAL VOC annotation.
    """
    import xml.etree.ElementTree as ET

    path = root / "annotations" / "xmls" / f"{name}.xml"
    if not path.is_file():
        return None
    try:
        tree = ET.parse(path)
        boxes = []
        for box in tree.getroot().iter("bndbox"):
            xmin, ymin, xmax, ymax = (float(box.findtext(k) or "nan") for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append((xmin, ymin, xmax, ymax))
    except (ET.ParseError, ValueError) as err:
        raise DataError(f"cannot read the head box in {path} ({err}) — fix or delete that file") from err
    return boxes


def split_names(root: Path, split: str) -> list[str]:
    """Image names of ``split`` ("test", "trainval" or "all") from ``annotations/``.

    Raises:
        DataError: the annotation file for that split is missing.
    """
    files = {"test": ["test.txt"], "trainval": ["trainval.txt"], "all": ["trainval.txt", "test.txt"]}
    if split not in files:
        raise DataError(f"expected split test, trainval or all, got {split!r}")
    names: list[str] = []
    for file in files[split]:
        path = root / "annotations" / file
        if not path.is_file():
            raise DataError(f"no {path} — expected the Oxford-IIIT Pet layout (images/ and annotations/)")
        names += list(read_annotations(path))
    return names
