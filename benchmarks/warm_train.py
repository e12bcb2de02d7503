"""A warm `train`: what a retrain costs once every feature is cached, and where the time goes.

    .venv/bin/python benchmarks/warm_train.py [--photos 25000] [--size 64] [--keep DIR]
    .venv/bin/python benchmarks/warm_train.py --stat-only --photos 250000     # the file index alone, per file

Makes ``--photos`` synthetic JPEGs (37 classes: a colour and a stripe frequency per class, noise per photo) in a
temporary folder under /tmp (deleted afterwards unless ``--keep``), then runs ``transferlab train`` three times
against one cache: cold (every feature computed: minutes), warm once (fills the file index if the cold run left
it empty) and warm again, measured whole (the command, imports included) and in-process with a timer around
each step. ``--stat-only`` times ``data.file_index.file_facts`` cold (read + hash) and warm (a stat) per file.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TIMES: dict[str, float] = {}


def make_photos(root: Path, n: int, size: int = 64, classes: int = 37, seed: int = 0) -> Path:
    """``n`` JPEGs in ``root/classNN/``; the same photos for the same arguments."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    palette, freq = rng.integers(40, 216, (classes, 3)), rng.uniform(0.05, 0.6, classes)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        c = i % classes
        folder = root / f"class{c:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        angle = rng.uniform(0, np.pi)
        wave = np.sin(freq[c] * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 6.3))
        pixels = palette[c][None, None, :] + 40 * wave[..., None] + rng.normal(0, 25, (size, size, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:07d}.jpg", quality=85)
    return root


def command(data: Path, cache: Path, out: Path) -> float:
    """Whole `transferlab train` command, wall seconds."""
    start = time.perf_counter()
    subprocess.run([str(ROOT / ".venv" / "bin" / "transferlab"), "train", str(data), "--out", str(out), "--cache-dir", str(cache), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _timed(module, name: str, label: str) -> None:
    real = getattr(module, name)

    @functools.wraps(real)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            TIMES[label] = TIMES.get(label, 0.0) + time.perf_counter() - start

    setattr(module, name, wrapper)


def breakdown(data: Path, cache: Path, out: Path) -> dict[str, float]:
    """One warm train in this process, with a timer around each step (seconds; steps nest: see the labels)."""
    start = time.perf_counter()
    import transferlab as tl
    from transferlab.data import file_index
    from transferlab.features import extract
    from transferlab.run import evaluation, fit, steps

    TIMES["import transferlab"] = time.perf_counter() - start
    _timed(file_index, "file_facts", "  stat/hash files (all calls)")
    _timed(steps, "extract", "features (stat, cache lookup)")
    _timed(extract, "extract_features", "  extract_features (all calls)")
    _timed(steps, "fit_head", "head fit (L2 path + refit)")
    _timed(fit, "_confidence", "calibration")
    _timed(fit, "_evaluate", "evaluate test split (incl. near copies)")
    _timed(evaluation, "_near_copies", "  near-copy search of the test split")
    t = time.perf_counter()
    ds = tl.load_dataset(data)
    TIMES["load_dataset (list + sniff)"] = time.perf_counter() - t
    t = time.perf_counter()
    tl.train(ds, out=out, cache_dir=cache)
    TIMES["train() whole"] = time.perf_counter() - t
    return TIMES


def stat_only(n: int, size: int) -> None:
    from transferlab.data.file_index import FileIndex, file_facts

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        start = time.perf_counter()
        paths = sorted(make_photos(Path(tmp) / "photos", n, size).rglob("*.jpg"))
        print(f"made {n:,} photos of {size}x{size} in {time.perf_counter() - start:.0f} s")
        index_root = Path(tmp) / "cache"
        for label in ("cold: read + hash", "cold index, files older: read + hash", "warm: stat", "warm again: stat"):
            if label.startswith("cold index"):
                time.sleep(2.1)  # past RACY_NS: the entries can now be vouched for
                shutil.rmtree(index_root, ignore_errors=True)
            start = time.perf_counter()
            file_facts(paths, FileIndex(index_root))
            took = time.perf_counter() - start
            print(f"{label:40s} {took:7.2f} s   {took / n * 1e6:7.1f} µs/file")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=25_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--keep", type=Path, help="Make (or reuse) the photos and the cache here and keep them.")
    parser.add_argument("--stat-only", action="store_true", help="Time only the file index (no training).")
    parser.add_argument("--skip-cold", action="store_true", help="The cache in --keep is already filled: no cold run.")
    args = parser.parse_args()
    if args.stat_only:
        return stat_only(args.photos, args.size)
    with contextlib.ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(dir="/tmp")))
        data, cache = work / "photos", work / "cache"
        if not data.is_dir():
            make_photos(data, args.photos, args.size)
        print(f"{args.photos:,} photos of {args.size}x{args.size} in {data}")
        if not args.skip_cold:
            print(f"cold train command  {command(data, cache, work / 'run-cold'):8.1f} s")
        print(f"warm train command  {command(data, cache, work / 'run-warm1'):8.1f} s   (fills the file index if the cold run could not vouch for the files yet)")
        print(f"warm train command  {command(data, cache, work / 'run-warm2'):8.1f} s   <- the figure")
        for label, seconds in breakdown(data, cache, work / "run-warm3").items():
            print(f"  {label:45s} {seconds:8.2f} s")
        print(f"  peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
