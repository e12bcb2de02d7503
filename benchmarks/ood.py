""""None of these": how well each in-distribution score tells a run's own kind of photo from others.

    PYTHONPATH=src .venv/bin/python benchmarks/ood.py [--pairs oxford:dtd10,oxford:brain-mri,...] [--methods msp,energy,mahalanobis,knn]
        [--max-train 300] [--max-eval 600] [--devdata ~/devdata] [--cache-dir DIR] [--select] [--out benchmarks/results/ood/ood.json]

For each pair IN:OUT a probe run is trained on IN (split seed 0, capped as ``recipes.py`` caps it), its
temperature and threshold fitted on IN's choosing images (``tl.calibrate`` with each score in turn), and
``Run.evaluate(IN, ood=OUT images)`` measures AUROC and FPR95 (the share of OUT accepted at 95 % IN
acceptance) with IN's test split as in-distribution, and the share each side the run's own threshold
(95 % of the choosing images) accepts. OUT images are OUT's test split (capped at --max-eval). Caltech101's
cat and dog classes (dalmatian, wild_cat, garfield, snoopy) are left out on both sides.

``--select`` is the mode the default score was chosen in: IN's test split is dropped and a quarter of its
training images scored in its place (``recipes.selection_split``), and OUT images come from OUT's
training split, so no test image of any set plays a part. Targets (the chosen score, each pair of the
table): AUROC >= 0.95 and FPR95 <= 0.20.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipes import OXFORD, cap_dataset, selection_split, set_path, stratified  # noqa: E402

import transferlab as tl  # noqa: E402
from transferlab.data.load import settle_classes  # noqa: E402
from transferlab.models.confidence import DEFAULT_METHOD, METHODS  # noqa: E402

PAIRS = "oxford:dtd10,oxford:brain-mri,oxford:sign-digits,oxford:caltech101,dtd10:oxford,sign-digits:oxford,caltech101:oxford"
PETS_IN_CALTECH = {"dalmatian", "wild_cat", "garfield", "snoopy"}  # a dog, a cat, a cartoon cat and a cartoon dog


def load(name: str, devdata: Path) -> tl.Dataset:
    ds = tl.load_dataset(set_path(name, devdata), seed=0)
    if name == "caltech101":
        ds = dataclasses.replace(ds, samples=[s for s in ds.samples if ds.classes[s.label] not in PETS_IN_CALTECH], classes=list(ds.classes))
        settle_classes(ds)
    return ds


def ood_paths(name: str, devdata: Path, cap: int, select: bool) -> list[Path]:
    ds = load(name, devdata)
    return [s.path for s in stratified(ds.split("train" if select else "test"), cap)]


def run_pair(in_name: str, out_name: str, methods: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    devdata = args.devdata.expanduser()
    ds = load(in_name, devdata)
    if args.select:
        ds = selection_split(ds)
    ds, caps = cap_dataset(ds, args.max_train, args.max_eval)
    others = ood_paths(out_name, devdata, args.max_eval, args.select)
    print(f"[{in_name} vs {out_name}] {caps}; {len(others)} OOD images", file=sys.stderr, flush=True)
    run = tl.train(ds, cache_dir=args.cache_dir, seed=0)
    rows = []
    for method in methods:
        started = time.perf_counter()
        scored = tl.calibrate(run, ds, ood_score=method, cache_dir=args.cache_dir)
        r = scored.evaluate(ds, "test", cache_dir=args.cache_dir, ood=others).report
        o = r["ood"]
        rows.append({
            "in": in_name, "ood": out_name, "method": method, "auroc": o["auroc"], "fpr95": o["fpr95"], "accepted_in": o["accepted_in"], "accepted_out": o["accepted_out"],
            "n_in": o["n_in"], "n_out": o["n_out"], "accuracy": r["accuracy"], "ece_before": r["calibration"]["ece_before"], "ece_after": r["calibration"]["ece_after"],
            "temperature": r["calibration"]["temperature"], "select": args.select, "caps": caps, "seconds": round(time.perf_counter() - started, 1),
        })
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict[str, Any]], methods: list[str]) -> str:
    head = "| in distribution | out of distribution | n in / out | " + " | ".join(f"{m} AUROC / FPR95" for m in methods) + f" | {DEFAULT_METHOD}: accepted in / out at the run's threshold |"
    lines = [head, "|" + "---|" * (4 + len(methods))]
    for key in dict.fromkeys((r["in"], r["ood"]) for r in rows):
        by = {r["method"]: r for r in rows if (r["in"], r["ood"]) == key}
        any_row = next(iter(by.values()))
        cells = [f"{by[m]['auroc']:.3f} / {by[m]['fpr95']:.3f}" + (" ✓" if m == DEFAULT_METHOD and by[m]["auroc"] >= 0.95 and by[m]["fpr95"] <= 0.20 else "") if m in by else "—" for m in methods]
        own = by.get(DEFAULT_METHOD)
        lines.append(f"| {key[0]} | {key[1]} | {any_row['n_in']} / {any_row['n_out']} | " + " | ".join(cells) + (f" | {own['accepted_in']:.3f} / {own['accepted_out']:.3f} |" if own else " | — |"))
    means = [sum(r["auroc"] for r in rows if r["method"] == m) / max(1, sum(r["method"] == m for r in rows)) for m in methods]
    fprs = [sum(r["fpr95"] for r in rows if r["method"] == m) / max(1, sum(r["method"] == m for r in rows)) for m in methods]
    lines.append("| **mean** | | | " + " | ".join(f"**{a:.3f} / {f:.3f}**" for a, f in zip(means, fprs)) + " | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", default=PAIRS)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--max-train", type=int, default=300)
    p.add_argument("--max-eval", type=int, default=600)
    p.add_argument("--devdata", type=Path, default=Path("~/devdata"))
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--select", action="store_true", help="score a quarter of IN's train and OUT's train images, never a test split")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    methods = args.methods.split(",")
    rows = []
    for pair in args.pairs.split(","):
        in_name, out_name = pair.split(":")
        rows += run_pair(in_name, out_name, methods, args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "oxford": str(OXFORD)}, indent=1) + "\n")
    print(table(rows, methods))


if __name__ == "__main__":
    main()
