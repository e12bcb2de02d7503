"""``check_dataset``: ``load_dataset`` plus a full decode of every image, so nothing fails later, and a
search for the same image in two splits (leakage)."""

from __future__ import annotations

import os
from pathlib import Path

from .._types import CountProgress as Progress
from .._io import atomic_write_bytes
from .dataset import Dataset
from .duplicates import find_leaks
from .file_index import FileIndex, file_facts
from .load import load_dataset, settle_classes



def decode_problem(path: Path) -> str | None:
    """``None`` when ``path`` fully decodes with ``open_rgb``, else the reason it does not."""
    return inspect_file(path)[0]


def inspect_file(path: Path) -> tuple[str | None, str | None]:
    """(reason it cannot be used or None, content hash or None): the file is read once for both."""
    facts = file_facts([path], check=True, workers=1)[0]
    return facts.problem, (facts.digest if facts.problem is None else None)


def check_dataset(
    path: Path | str,
    layout: str = "auto",
    label: str = "breed",
    val_frac: float = 0.1,
    test_frac: float = 0.2,
    seed: int = 0,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    cache_dir: Path | str | None = None,
) -> Dataset:
    """Like ``load_dataset``, but every image is fully decoded and failures move to ``skipped``.

    The split is computed before decoding (as ``load_dataset`` does), so a checked dataset has the
    same split as a loaded one, minus the files that failed. Files with identical bytes in two splits
    are added to ``warnings`` in pairs (train/test leakage inflates test scores).

    Args:
        path, layout, label, val_frac, test_frac, seed: as for ``load_dataset``.
        workers: decoding threads (default: twice the cores, at most 16); Pillow releases the GIL.
        progress: called with (done, total) once the files already known are counted, then per batch of files read.
        cache_dir: where the file index lives (default: the feature cache's root): a file decoded before and
            unchanged since (same size, mtime, ctime, inode) is not read again, and its verdict is reported as then.

    Returns:
        The dataset with only fully decodable samples.

    Raises:
        DataError: as ``load_dataset``, also when decoding leaves fewer than 2 usable classes.
    """
    dataset = load_dataset(path, layout, label, val_frac, test_frac, seed)
    paths = [s.path for s in dataset.samples]
    failed: dict[Path, str] = {}
    hashes: dict[Path, str] = {}
    facts = file_facts(paths, FileIndex(cache_dir), check=True, workers=workers, progress=progress)
    for p, fact in zip(paths, facts):
        if fact.problem is not None:
            failed[p] = fact.problem
        else:
            hashes[p] = fact.digest
    dataset.drop(failed)
    settle_classes(dataset)
    dataset.warnings.extend(find_leaks(dataset, hashes))
    return dataset


def write_fix_list(dataset: Dataset, path: Path | str) -> Path:
    """Write the paths of ``dataset.skipped`` to ``path``, one a line, as their bytes on disk.

    Nothing in the dataset is touched: the list is for the user to review (``xargs -d '\\n' ls -l < FILE``).
    Names that are not UTF-8 are written byte for byte, so the list names the real files.
    """
    path = Path(path)
    lines = b"".join(os.fsencode(s.path) + b"\n" for s in dataset.skipped)
    atomic_write_bytes(path, lines)
    return path
