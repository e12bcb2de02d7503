"""``compare`` over the development suite: k-fold probe accuracy of the bundled backbones, pooled against multi
features, with combinations, then the test accuracy of each recommended choice; or the timing check.

    python benchmarks/compare.py [--sets oxford,clothing,...] [--max-train 600] [--max-eval 600] [--devdata ~/devdata]
        [--cache-dir DIR] [--out benchmarks/results/compare/compare.jsonl] [--table-only]
    python benchmarks/compare.py --timing clothing --timing-images 3000 --cache-dir /tmp/compare-timing

Sets are loaded with split seed 0 and capped as ``recipes.py`` caps them (stratified: --max-train train images,
--max-train//4 val, --max-eval test). ``compare`` scores train + val; the test split is touched once, after the
choice: ``transferlab train`` (the probe) of the recommended backbone, combination (``--backbone A+B``) or
feature mode (``--features multi``), scored on test. One JSON line per (set, features) is appended to
--out, so a killed run resumes where it stopped. ``--timing`` runs the three bundled backbones on
--timing-images train + val images of one set twice, into an empty --cache-dir: cold, then warm.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import transferlab as tl
from transferlab.models.bundled import BUNDLED

sys.path.insert(0, str(Path(__file__).parent))
from recipes import ALL_SETS, cap_dataset, set_path  # noqa: E402

BACKBONES = sorted(BUNDLED)


def test_accuracy(ds: tl.Dataset, backbone: str, mode: str, cache_dir: str | None) -> tuple[float, int]:
    """What ``transferlab train DATA --backbone NAME --features MODE`` (the probe) scores on the test split."""
    metrics = tl.train(ds, backbone, features=mode, cache_dir=cache_dir).record.metrics
    return float(metrics["accuracy"]), int(metrics["n"])


def run_set(name: str, args: argparse.Namespace, done: set[tuple[str, str]]) -> None:
    ds = tl.load_dataset(set_path(name, Path(args.devdata).expanduser()), seed=0)
    ds, caps = cap_dataset(ds, args.max_train, args.max_eval)
    for mode in ("pooled", "multi"):
        if (name, mode) in done:
            continue
        started = time.perf_counter()
        result = tl.compare(ds, BACKBONES, features=mode, combine=True, cache_dir=args.cache_dir)
        rec = result.row(result.recommended)
        acc, n = test_accuracy(ds, rec.name, mode, args.cache_dir)
        row = {"set": name, "features": mode, "caps": caps, **result.to_dict(), "test_accuracy": acc, "test_n": n, "wall_s": round(time.perf_counter() - started, 1)}
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"[{name} {mode}] {result.recommendation}; test {acc:.3f} (n={n}); {row['wall_s']} s", file=sys.stderr, flush=True)


def table(rows: list[dict]) -> str:
    """One markdown table: per set and feature mode, every backbone's k-fold accuracy, then the choice's test accuracy."""
    names = BACKBONES + ["best 2", "best 3"]
    head = "| set | features | " + " | ".join(n.replace("efficientnet_", "") for n in names) + " | recommended | test acc | ImageNet conf |"
    lines = [head, "|" + "---|" * (len(names) + 5)]
    for r in rows:
        by = {x["name"]: x for x in r["rows"]}
        combos = sorted((x for x in r["rows"] if x["members"]), key=lambda x: len(x["members"]))
        cells = [by[n] for n in BACKBONES] + combos + [None] * (2 - len(combos))
        fmt = lambda x: "" if x is None else f"{x['accuracy']:.3f} ± {x['accuracy_sd']:.3f}"  # noqa: E731
        conf = by[BACKBONES[0]]["imagenet_confidence"]
        lines.append(f"| {r['set']} | {r['features']} | " + " | ".join(fmt(c) for c in cells) + f" | {r['recommended'].replace('efficientnet_', '')} | {r['test_accuracy']:.3f} | {conf:.2f} |")
    return "\n".join(lines)


def timing(args: argparse.Namespace) -> None:
    cache = Path(args.cache_dir)
    if cache.exists():
        shutil.rmtree(cache)
    ds = tl.load_dataset(set_path(args.timing, Path(args.devdata).expanduser()), seed=0)
    ds, caps = cap_dataset(ds, args.timing_images, args.timing_images // 4)
    for label in ("cold", "warm"):
        started = time.perf_counter()
        result = tl.compare(ds, BACKBONES, cache_dir=cache)
        wall = time.perf_counter() - started
        speeds = ", ".join(f"{r.name} {r.images_per_s:.0f} img/s" for r in result.rows)
        extraction = sum(result.data["images"] / r.images_per_s for r in result.rows) if label == "cold" else 0.0
        print(f"{label}: {wall:.1f} s for {result.data['images']} images ({caps}); extraction at the measured speeds {extraction:.1f} s; {speeds}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=ALL_SETS)
    p.add_argument("--max-train", type=int, default=600)
    p.add_argument("--max-eval", type=int, default=600)
    p.add_argument("--devdata", default="~/devdata")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", default="benchmarks/results/compare/compare.jsonl")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--timing", default=None, help="a set name: time compare cold and warm on it instead")
    p.add_argument("--timing-images", type=int, default=3000)
    args = p.parse_args()
    if args.timing:
        return timing(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()] if out.exists() else []
    if not args.table_only:
        done = {(r["set"], r["features"]) for r in rows}
        for name in args.sets.split(","):
            run_set(name, args, done)
        rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    print(table(rows))


if __name__ == "__main__":
    main()
