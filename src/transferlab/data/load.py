"""``load_dataset``: detect the layout, scan it, sniff every image header, split, leave out unusable classes."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import DataError
from .dataset import Dataset, Sample, Skipped, Warned
from .decode import BadImageError, header_size, tiny_reason
from .layouts import Scan, detect_layout, scan_folder
from .oxford import scan_oxford
from .splits import check_fractions, stratified_split

LABELS = ("breed", "species")


def _header(path: Path) -> tuple[str | None, tuple[int, int] | None]:
    try:
        return None, header_size(path)
    except BadImageError as err:
        return err.reason, None


def _sniff_all(paths: list[Path]) -> list[tuple[str | None, tuple[int, int] | None]]:
    """(reason to skip or None, (width, height) or None) of each path's header, in order.

    Threads overlap the file-system waits of cold or network folders; header parsing holds the GIL, so
    a few threads suffice (about 25 µs a file on a warm local disk: 100k files in a few seconds).
    """
    if len(paths) < 64:
        return [_header(p) for p in paths]
    with ThreadPoolExecutor(min(8, 2 * (os.cpu_count() or 1))) as pool:
        return list(pool.map(_header, paths))


def scan(path: Path | str, layout: str = "auto", label: str = "breed") -> Scan:
    """Detect the layout and list its candidate files (nothing is opened yet).

    Raises:
        DataError: unknown ``layout`` or ``label``, an unusable folder, or species labels outside Oxford.
    """
    if label not in LABELS:
        raise DataError(f"expected label in {', '.join(LABELS)}, got {label!r} — pick one of those")
    root, found = detect_layout(path, layout)
    if found == "oxford":
        return scan_oxford(root, label)
    if label == "species":
        raise DataError(
            f"expected the Oxford-IIIT Pet layout for label 'species', got layout {found!r} at {root} — "
            "use label 'breed' (folders name the classes)"
        )
    return scan_folder(root, found)


def settle_classes(dataset: Dataset, empty: set[str] | None = None) -> None:
    """Leave out (with a warning) classes with fewer than 2 usable images; 2 or more classes must remain.

    Args:
        dataset: modified in place.
        empty: class names seen on disk without any image file (empty folders).

    Raises:
        DataError: fewer than 2 classes would remain (the message names those left out).
    """
    counts = Counter(dataset.classes[s.label] for s in dataset.samples)
    small = {c: f"has {counts[c]} usable image{'s' * (counts[c] != 1)} (2 or more needed)" for c in dataset.classes if counts[c] < 2}
    small.update({c: "has no image files" for c in empty or ()})
    kept = sorted(set(dataset.classes) - set(small))
    if len(kept) < 2:
        dropped = f"; left out: {', '.join(f'{c} ({why})' for c, why in sorted(small.items()))}" if small else ""
        raise DataError(
            f"expected at least 2 classes in {dataset.root}, got {len(kept)} ({', '.join(kept) or 'none'}){dropped} — "
            "add a folder per class with 2 or more images"
        )
    dataset.leave_out_classes({c: why for c, why in small.items() if c in dataset.classes})
    for name in sorted((empty or set()) - set(dataset.classes)):
        dataset.warnings.append(Warned(dataset.root / name, f"class {name!r} {small[name]}: left out"))


def build_dataset(found: Scan, label: str, val_frac: float, test_frac: float, seed: int) -> Dataset:
    """Sniff the scanned files, leave out classes too small to use, and assign splits."""
    headers = _sniff_all([p for p, _, _ in found.items])
    usable = [item for item, (reason, _) in zip(found.items, headers) if reason is None]
    skipped = [Skipped(p, r) for p, r in found.skipped]
    skipped += [Skipped(item[0], r) for item, (r, _) in zip(found.items, headers) if r is not None]
    tiny = [Warned(item[0], w) for item, (_, size) in zip(found.items, headers) if size and (w := tiny_reason(size))]

    if found.given_split:
        split_of = {p: split for p, _, split in usable}
    else:
        by_class: dict[str, list[Path]] = defaultdict(list)
        for p, cls, _ in usable:
            by_class[cls].append(p)
        split_of = stratified_split(by_class, val_frac, test_frac, seed)
    classes = sorted(found.class_names & {cls for _, cls, _ in found.items})
    index = {name: i for i, name in enumerate(classes)}
    samples = sorted((Sample(p, index[cls], split_of[p]) for p, cls, _ in usable), key=lambda s: s.path)
    dataset = Dataset(
        root=found.root,
        layout=found.layout,
        classes=classes,
        samples=samples,
        skipped=sorted(skipped, key=lambda s: s.path),
        label=label if found.layout == "oxford" else "class",
        given_split=found.given_split,
        species=found.species if found.layout == "oxford" and label == "breed" else None,
        split_options={"val_frac": val_frac, "test_frac": test_frac, "seed": seed},
        warnings=tiny,
    )
    settle_classes(dataset, empty=found.class_names - set(classes))
    return dataset


def load_dataset(
    path: Path | str,
    layout: str = "auto",
    label: str = "breed",
    val_frac: float = 0.1,
    test_frac: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """Find the images under ``path``, label them, split them, and list the files that cannot be used.

    Only image headers are read (seconds for 100k files); a file that fails the full decode later is
    dropped then (``Dataset.drop``). ``check_dataset`` decodes everything up front.

    Args:
        path: the dataset folder (for Oxford or PetImages also the folder containing
            ``oxford-iiit-pet/`` or ``PetImages/``).
        layout: ``"auto"``, ``"folder"`` (a sub-folder per class, optionally inside train/ val/ test/),
            ``"oxford"`` (Oxford-IIIT Pet) or ``"petimages"`` (Microsoft's Cat/ Dog/).
        label: for Oxford, ``"breed"`` (37 classes) or ``"species"`` (cat/dog); ignored otherwise.
        val_frac: validation fraction per class when the data gives no split.
        test_frac: test fraction per class when the data gives no split.
        seed: seed of the stratified split.

    Returns:
        The dataset; its ``skipped`` lists every unusable file with a reason.

    Raises:
        DataError: missing or unrecognised folder, unknown layout or label, bad fractions, fewer than
            2 classes, or a class with fewer than 2 usable images.
    """
    check_fractions(val_frac, test_frac)
    return build_dataset(scan(path, layout, label), label, val_frac, test_frac, seed)


def load_recorded(data: dict) -> Dataset:
    """The data set a run was trained on, loaded again from what its record says (root, layout, label and the
    split options), so the same images fall in the same splits.

    Raises:
        DataError: the folder is gone or no longer loads.
    """
    root = Path(data["root"])
    if not root.exists():
        raise DataError(f"the run's data folder {root} is gone (moved or deleted) — put it back, or give the data again")
    label = data.get("label", "breed") if data["layout"] == "oxford" else "breed"  # other layouts record their own label name
    return load_dataset(root, layout=data["layout"], label=label, **(data.get("split_options") or {}))
