"""``check_dataset``: ``load_dataset`` plus a full decode of every image, so nothing fails later."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .dataset import Dataset
from .decode import BadImageError, open_rgb
from .load import load_dataset, validate

Progress = Callable[[int, int], None]  # (files decoded, files total)


def decode_problem(path: Path) -> str | None:
    """``None`` when ``path`` fully decodes with ``open_rgb``, else the reason it does not."""
    try:
        open_rgb(path)
    except BadImageError as err:
        return err.reason
    return None


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
) -> Dataset:
    """Like ``load_dataset``, but every image is fully decoded and failures move to ``skipped``.

    The split is computed before decoding (as ``load_dataset`` does), so a checked dataset has the
    same split as a loaded one, minus the files that failed.

    Args:
        path, layout, label, val_frac, test_frac, seed: as for ``load_dataset``.
        workers: decoding threads (default: twice the cores, at most 16); Pillow releases the GIL.
        progress: called with (done, total) after each file.

    Returns:
        The dataset with only fully decodable samples.

    Raises:
        DataError: as ``load_dataset``, also when decoding leaves a class with fewer than 2 images.
    """
    dataset = load_dataset(path, layout, label, val_frac, test_frac, seed)
    paths = [s.path for s in dataset.samples]
    failed: dict[Path, str] = {}
    with ThreadPoolExecutor(workers or min(16, 2 * (os.cpu_count() or 1))) as pool:
        for done, (p, reason) in enumerate(zip(paths, pool.map(decode_problem, paths)), 1):
            if reason is not None:
                failed[p] = reason
            if progress is not None:
                progress(done, len(paths))
    dataset.drop(failed)
    validate(dataset.root, set(dataset.classes), Counter(dataset.classes[s.label] for s in dataset.samples))
    return dataset
