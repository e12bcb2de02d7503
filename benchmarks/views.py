"""Augmented views for the probe's head (``--views``) and at test time (``--tta``) on the development suite:
held-out accuracy of each combination beside the plain probe, and what the views cost.

    .venv/bin/python benchmarks/views.py [--sets ...] [--seeds 0,1,2] [--views 0,1,3] [--tta 0,1,3] [--select]
        [--max-train 300] [--max-eval 600] [--out benchmarks/results/views/select.jsonl] [--cache-dir DIR] [--resume]
    .venv/bin/python benchmarks/views.py --timing [--sets oxford] [--out benchmarks/results/views/timing.jsonl]
    .venv/bin/python benchmarks/views.py --table-only --out FILE

Each set is loaded and capped as ``recipes.py`` does (split seed 0; ``--select`` scores a stratified quarter of
train instead of the test split: the mode for choosing a default). For each seed and each ``--views`` N one probe
run is trained (``tl.train(capped, strategy="probe", seed=seed, views=N)``) and its report split scored with each
``--tta`` count (``run.predict_scored(paths, tta=M)``): one JSON line per (set, seed, views, tta). Every view's
features are cached, so the rows after the first of a set cost one head fit each.

``--timing``: on a fresh feature cache, the seconds to extract the plain features and each extra view of the
report split's photos, and ``predict`` (files in, predictions out) with and without ``tta``, cold (nothing cached)
and warm; one line per measure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

import transferlab as tl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipes import ALL_SETS, cap_dataset, selection_split, set_path  # noqa: E402

Row = dict[str, Any]


def capped(name: str, devdata: Path, select: bool, max_train: int, max_eval: int) -> tuple[tl.Dataset, str]:
    ds = tl.load_dataset(set_path(name, devdata), seed=0)
    if select:
        ds = selection_split(ds)
    ds, caps = cap_dataset(ds, max_train, max_eval)
    return ds, caps + (" (selection: 25% of train scored, test unused)" if select else "")


def scored_split(ds: tl.Dataset) -> tuple[list[Path], np.ndarray, str]:
    """The report split's paths and labels (test, else val)."""
    samples, split = ds.evaluation_split(None)
    return [s.path for s in samples], np.array([s.label for s in samples]), split


def run_set(name: str, args: argparse.Namespace, done: set[tuple]) -> None:
    ds, caps = capped(name, args.devdata.expanduser(), args.select, args.max_train, args.max_eval)
    paths, labels, split = scored_split(ds)
    print(f"[{name}] {len(ds.classes)} classes, {caps}", file=sys.stderr, flush=True)
    for seed in args.seeds:
        for views in args.views:
            ttas = [t for t in args.tta if (name, seed, views, t) not in done]
            if not ttas:
                continue
            started = time.perf_counter()
            run = tl.train(ds, strategy="probe", seed=seed, views=views, cache_dir=args.cache_dir)
            train_s = time.perf_counter() - started
            timing = run.record.timing.to_dict()
            for tta in ttas:
                t0 = time.perf_counter()
                scored = run.predict_scored(paths, cache_dir=args.cache_dir, tta=tta)
                accuracy = float((scored.probs.argmax(1) == labels[scored.ok]).mean())
                row = {"set": name, "seed": seed, "views": views, "tta": tta, "accuracy": accuracy, "split": split, "n": len(scored.ok),
                       "recorded_accuracy": (run.record.metrics or {}).get("accuracy"), "chosen_l2": run.record.chosen_l2,
                       "train_s": round(train_s, 2), "head_s": timing.get("head_s"), "views_s": timing.get("views_s"),
                       "view_images_computed": timing.get("view_images_computed"), "score_s": round(time.perf_counter() - t0, 2), "caps": caps,
                       "max_train": args.max_train, "max_eval": args.max_eval}
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"[{name} seed {seed} views {views} tta {tta}] accuracy {accuracy:.4f}", file=sys.stderr, flush=True)


def timing(args: argparse.Namespace) -> None:
    """Cold and warm extraction/predict seconds per view on a fresh cache (one line per measure)."""
    from transferlab.features import FeatureCache, cache_key, extract_features, pick_runtime
    from transferlab.features.views import VIEWS

    for name in args.sets:
        ds, caps = capped(name, args.devdata.expanduser(), False, args.max_train, args.max_eval)
        paths, _, split = scored_split(ds)
        run = tl.train(ds, strategy="probe", seed=0, cache_dir=args.cache_dir)
        runtime = pick_runtime()

        def emit(what: str, seconds: float, **extra: Any) -> None:
            row = {"set": name, "measure": what, "images": len(paths), "seconds": round(seconds, 3), "ms_per_image": round(1000 * seconds / len(paths), 2),
                   "precision": runtime.precision, "caps": caps, "split": split, **extra}
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"[{name}] {what}: {seconds:.2f} s ({row['ms_per_image']} ms/image)", file=sys.stderr, flush=True)

        with tempfile.TemporaryDirectory() as fresh:
            cache = FeatureCache(fresh, cache_key(run.model, runtime))
            for view in (None, *VIEWS):
                ex = extract_features(run.model, paths, cache=cache, runtime=runtime, view=view)
                emit(f"extract {view or 'plain'} (cold)", ex.seconds, computed=ex.computed)
        for tta in (False, True):
            with tempfile.TemporaryDirectory() as fresh:
                for state in ("cold", "warm"):
                    t0 = time.perf_counter()
                    run.predict(paths, cache_dir=fresh, tta=tta)
                    emit(f"predict{' --tta' if tta else ''} ({state})", time.perf_counter() - t0)


def read_rows(path: Path) -> list[Row]:
    latest: dict[tuple, Row] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                if "views" in row:
                    latest[(row["set"], row["seed"], row["views"], row["tta"])] = row
    return list(latest.values())


def table(rows: list[Row]) -> str:
    """Per set and combination: mean accuracy over seeds, and the change from the plain probe in points; the suite
    mean and the worst set, against the adoption rule (mean gains, no set loses more than 0.5 point)."""
    acc: dict[tuple[int, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        acc[(r["views"], r["tta"])][r["set"]].append(r["accuracy"])
    combos = sorted(acc)
    sets = sorted({r["set"] for r in rows})
    base = {s: statistics.fmean(acc[(0, 0)][s]) for s in sets if acc[(0, 0)].get(s)}
    lines = ["| views | tta | " + " | ".join(sets) + " | suite mean | vs plain (pt) | worst set (pt) | rule |", "|---|---|" + "---|" * (len(sets) + 4)]
    for combo in combos:
        means = {s: statistics.fmean(acc[combo][s]) for s in sets if acc[combo].get(s)}
        seeds = min(len(acc[combo][s]) for s in means)
        cells = [f"{100 * means[s]:.2f}" if s in means else "" for s in sets]
        common = [s for s in means if s in base]
        if len(common) == len(sets) and common:
            gain = 100 * (statistics.fmean(means[s] for s in common) - statistics.fmean(base[s] for s in common))
            worst_set = min(common, key=lambda s: means[s] - base[s])
            worst = 100 * (means[worst_set] - base[worst_set])
            rule = "n/a" if combo == (0, 0) else ("adopt" if gain > 0 and worst >= -0.5 else "keep as option")
            tail = f"{100 * statistics.fmean(means.values()):.2f} | {gain:+.2f} | {worst:+.2f} ({worst_set}) | {rule} ({seeds} seeds)"
        else:
            tail = f"{100 * statistics.fmean(means.values()):.2f} | | | incomplete"
        lines.append(f"| {combo[0]} | {combo[1]} | " + " | ".join(cells) + f" | {tail} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default=ALL_SETS)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--views", default="0,1,3", help="extra views per training photo, one run each")
    p.add_argument("--tta", default="0,1,3", help="extra views averaged at test time, one score each")
    p.add_argument("--max-train", type=int, default=300)
    p.add_argument("--max-eval", type=int, default=600)
    p.add_argument("--devdata", type=Path, default=Path("~/devdata"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/views/select.jsonl"))
    p.add_argument("--cache-dir", default=None, help="feature cache (default: transferlab's)")
    p.add_argument("--select", action="store_true", help="score a holdout of train, never test: for choosing defaults")
    p.add_argument("--resume", action="store_true", help="skip (set, seed, views, tta) rows already in --out")
    p.add_argument("--timing", action="store_true", help="cost per view and of predict --tta on a fresh cache")
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args(argv)
    args.sets = args.sets.split(",")
    args.seeds, args.views, args.tta = ([int(x) for x in v.split(",")] for v in (args.seeds, args.views, args.tta))
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.table_only:
        print(table(read_rows(args.out)))
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.timing:
        timing(args)
        return
    done = {(r["set"], r["seed"], r["views"], r["tta"]) for r in read_rows(args.out)} if args.resume else set()
    for name in args.sets:
        run_set(name, args, done)
    print(table(read_rows(args.out)))


if __name__ == "__main__":
    main()
