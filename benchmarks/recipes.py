"""Training recipes compared: held-out accuracy and wall time of each strategy (probe, finetune, auto)
on several photo datasets over several training seeds, printed as a markdown table with target checks.

    .venv/bin/python benchmarks/recipes.py [--sets oxford,clothing,sign-digits,dtd10,brain-mri,magnetic-tiles,caltech101]
        [--strategies probe,finetune,auto] [--seeds 0,1,2] [--max-train 300] [--max-eval 600] [--devdata ~/devdata]
        [--out benchmarks/results/recipes/recipes.json] [--jobs 1] [--cache-dir DIR] [--resume] [--table-only] [--select]

A strategy may carry recipe changes, ``finetune:lr=3e-4;unfreeze=3``, to compare variants. ``--select``
scores a stratified quarter of each set's training images instead of its test split: the mode for
choosing defaults, so that no default is picked on a test split.

Every set is loaded with split seed 0 (the same held-out split for every recipe and seed) and capped
to a stratified subset: at most --max-train train images, --max-train//4 val images (when the data has
a val split) and --max-eval images in the reported split (test, else val). Each run is
``tl.train(capped, strategy=..., seed=...)`` with its wall time measured around the call; one JSON line
per run is appended to <out>.jsonl (so a killed suite keeps its results; --resume skips the
successful rows already there with the same caps, a fresh start moves the old file to .jsonl.bak) and
the rows with their summary are written to <out>; --table-only prints the table of <out>.jsonl. Targets: finetune >= probe - 0.5
point on every set; suite mean finetune >= probe + 2 points; auto >= max(probe, finetune) - 0.5 point
on every set; auto's mean wall time <= finetune's on every set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

import transferlab as tl
from transferlab.data.dataset import Sample

OXFORD = Path(__file__).resolve().parents[2] / "shared" / "data" / "oxford-iiit-pet-mini"
ALL_SETS = "oxford,clothing,sign-digits,dtd10,brain-mri,magnetic-tiles,caltech101"
Row = dict[str, Any]


def set_path(name: str, devdata: Path) -> Path:
    return OXFORD if name == "oxford" else devdata / name


def stratified(samples: list[Sample], cap: int) -> list[Sample]:
    """At most ``cap`` samples (at least one per class present), per class proportionally, seeded by 0."""
    if len(samples) <= cap:
        return list(samples)
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.path):
        by_class[s.label].append(s)
    labels = sorted(by_class)
    exact = np.array([cap * len(by_class[c]) / len(samples) for c in labels])
    quota = np.maximum(np.floor(exact).astype(int), 1)
    for i in np.argsort(np.floor(exact) - exact, kind="stable"):  # largest remainders fill up to cap
        if quota.sum() < cap and quota[i] < len(by_class[labels[i]]):
            quota[i] += 1
    rng = np.random.default_rng(0)
    kept = [by_class[c][j] for c, q in zip(labels, quota) for j in sorted(rng.choice(len(by_class[c]), q, replace=False))]
    return sorted(kept, key=lambda s: s.path)


def cap_dataset(ds: tl.Dataset, max_train: int, max_eval: int) -> tuple[tl.Dataset, str]:
    """The capped copy of ``ds`` and the line stating the caps."""
    has_test = bool(ds.split("test"))
    train = stratified(ds.split("train"), max_train)
    val = stratified(ds.split("val"), max_train // 4 if has_test else max_eval)
    test = stratified(ds.split("test"), max_eval)
    capped = dataclasses.replace(ds, samples=sorted(train + val + test, key=lambda s: s.path), classes=list(ds.classes), skipped=list(ds.skipped), warnings=list(ds.warnings))
    n_eval, split = (len(test), "test") if has_test else (len(val), "val")
    return capped, f"capped: {len(train)} train / {len(val)} val / {n_eval} eval ({split}) images of {len(ds.samples)}"


def recipe(spec: str) -> tuple[str, tl.FinetuneConfig, tl.ProbeConfig]:
    """``"finetune:lr=3e-4;unfreeze=3"`` -> ("finetune", the default recipes with those fields changed);
    a field is looked up in ``FinetuneConfig`` first, then in ``ProbeConfig`` (``probe:folds=1``)."""
    strategy, _, changes = spec.partition(":")
    configs = [tl.FinetuneConfig(), tl.ProbeConfig()]
    for change in filter(None, changes.split(";")):
        key, _, value = change.partition("=")
        i = 0 if hasattr(configs[0], key) else 1
        kind = type(getattr(configs[i], key))
        configs[i] = dataclasses.replace(configs[i], **{key: (value.lower() in ("1", "true")) if kind is bool else kind(value)})
    return strategy, configs[0], configs[1]


def selection_split(ds: tl.Dataset, frac: float = 0.25) -> tl.Dataset:
    """For choosing defaults without a test split: the test split dropped, and a stratified ``frac`` of
    train (seed 0) scored in its place. What this reports is never what the README's table reports."""
    from transferlab.data.roles import carve

    kept, scored = carve(ds.split("train"), frac, seed=0)
    samples = kept + ds.split("val") + [dataclasses.replace(s, split="test") for s in scored]
    return dataclasses.replace(ds, samples=sorted(samples, key=lambda s: s.path), skipped=list(ds.skipped), warnings=list(ds.warnings))


def run_one(ds: tl.Dataset, name: str, strategy: str, seed: int, cache_dir: str | None) -> Row:
    """One training run as a results row (an ``error`` row when it raises)."""
    row: Row = {"set": name, "strategy": strategy, "seed": seed}
    fresh = dataclasses.replace(ds, samples=list(ds.samples), classes=list(ds.classes), skipped=list(ds.skipped), warnings=list(ds.warnings))
    started = time.perf_counter()
    try:
        plain, config, probe = recipe(strategy)
        run = tl.train(fresh, strategy=plain, seed=seed, cache_dir=cache_dir, finetune_config=config, probe=probe)
    except Exception as e:  # noqa: BLE001 — e.g. ConfigError while 'auto' does not exist yet
        return {**row, "error": f"{type(e).__name__}: {e}", "wall_s": round(time.perf_counter() - started, 2)}
    metrics = run.meta.get("metrics", {})
    return {
        **row,
        "accuracy": metrics.get("accuracy"),
        "balanced_accuracy": metrics.get("balanced_accuracy"),
        "split": metrics.get("split"),
        "wall_s": round(time.perf_counter() - started, 2),
        "decision": run.meta.get("decision"),
        "best_epoch": (run.meta.get("finetune") or {}).get("best_epoch"),
        "win_rate": (run.meta.get("finetune") or {}).get("win_rate"),
        "head_win_rate": (run.meta.get("finetune") or {}).get("head_win_rate"),  # with --judge refit: the win rate with its own head
        "kept": run.meta.get("kept"),
        "retried_after": (run.meta.get("finetune") or {}).get("retried_after"),
        "val_history": [round(r["val_accuracy"], 4) for r in (run.meta.get("finetune") or {}).get("history", [])],  # epoch 0 (the probe) first
        "train_loss_history": [round(r["train_loss"], 4) for r in (run.meta.get("finetune") or {}).get("history", []) if "train_loss" in r],  # epoch 1 first
    }


def run_set(name: str, path: str, todo: list[tuple[str, int]], args: dict[str, Any], log: str, threads: int | None) -> list[Row]:
    """All (strategy, seed) runs of one set; each row is appended to ``log`` as soon as it is done."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    ds = tl.load_dataset(path, seed=0)
    if args.get("select"):
        ds = selection_split(ds)
    ds, caps = cap_dataset(ds, args["max_train"], args["max_eval"])
    caps += " (selection: 25% of train scored, test unused)" if args.get("select") else ""
    print(f"[{name}] {len(ds.classes)} classes, {caps}", file=sys.stderr, flush=True)
    rows = []
    for strategy, seed in todo:
        row = {**run_one(ds, name, strategy, seed, args["cache_dir"]), "caps": caps, "max_train": args["max_train"], "max_eval": args["max_eval"]}
        with open(log, "a") as f:
            f.write(json.dumps(row, default=str) + "\n")
        result = row["error"] if "error" in row else f"accuracy {row['accuracy']:.3f}"
        print(f"[{name} {strategy} seed {seed}] {result} in {row['wall_s']:.1f}s", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def read_rows(log: Path) -> list[Row]:
    """The rows of ``log``, the latest one per (set, strategy, seed)."""
    latest: dict[tuple, Row] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                latest[(row["set"], row["strategy"], row["seed"])] = row
    return list(latest.values())


def summarize(rows: list[Row]) -> dict[str, dict[str, dict[str, float]]]:
    """set -> strategy -> mean/sd accuracy, mean balanced accuracy and wall time over the successful seeds."""
    groups: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if "error" not in r and r.get("accuracy") is not None:
            groups[r["set"]][r["strategy"]].append(r)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, per in groups.items():
        for strategy, rs in per.items():
            acc = [r["accuracy"] for r in rs]
            out.setdefault(name, {})[strategy] = {
                "n": len(rs), "mean": statistics.fmean(acc), "sd": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                "bal": statistics.fmean(r["balanced_accuracy"] for r in rs), "wall": statistics.fmean(r["wall_s"] for r in rs),
            }
    return out


def check(name: str, pairs: list[tuple[str, float]], ok: float, unit: str = "pt") -> str:
    """'met' or 'MISSED' for a margin that must be >= ``ok`` on every (set, margin) pair, with the worst one."""
    if not pairs:
        return f"- {name}: n/a (no sets with both)"
    where, worst = min(pairs, key=lambda p: p[1])
    detail = f"{worst:+.2f} {unit}" if len(pairs) == 1 and where == "suite" else f"worst {worst:+.2f} {unit} on {where}"
    return f"- {name}: {'met' if worst >= ok - 1e-9 else 'MISSED'} ({detail})"


def note(row: Row) -> str:
    """What a run kept (auto's decision, finetune's best epoch) or why it failed, in a table cell."""
    if "error" in row:
        return row["error"][:80]
    decision = row.get("decision")
    parts = [json.dumps(decision, default=str) if isinstance(decision, dict) else str(decision)] if decision else []
    parts += [f"best epoch {row['best_epoch']}"] if row.get("best_epoch") is not None else []
    return ", ".join(parts).replace("|", "/")


def table(rows: list[Row], strategies: list[str]) -> str:
    """The markdown table, per-strategy suite summary and target checks."""
    s = summarize(rows)
    caps = {r["set"]: r.get("caps", "") for r in rows}
    lines = ["| set | strategy | seeds | accuracy | balanced acc | wall s | best epoch / decision |", "|---|---|---|---|---|---|---|"]
    for name in sorted({r["set"] for r in rows}):
        for st in strategies:
            rs = [r for r in rows if r["set"] == name and r["strategy"] == st]
            notes = sorted({note(r) for r in rs} - {""})
            if st in s.get(name, {}):
                v = s[name][st]
                lines.append(f"| {name} | {st} | {v['n']} | {v['mean']:.3f} ± {v['sd']:.3f} | {v['bal']:.3f} | {v['wall']:.1f} | {'; '.join(notes)} |")
            elif rs:
                lines.append(f"| {name} | {st} | 0 | error | | | {'; '.join(notes)} |")
    lines += ["", *(f"- {name}: {c}" for name, c in sorted(caps.items())), "", "| strategy | sets | suite mean | worst vs probe (pt) |", "|---|---|---|---|"]
    for st in strategies:
        means = {n: per[st]["mean"] for n, per in s.items() if st in per}
        diffs = [100 * (m - s[n]["probe"]["mean"]) for n, m in means.items() if "probe" in s[n]]
        if means:
            lines.append(f"| {st} | {len(means)} | {statistics.fmean(means.values()):.3f} | {min(diffs):+.2f} |" if diffs else f"| {st} | {len(means)} | {statistics.fmean(means.values()):.3f} | n/a |")
    both = [n for n, per in s.items() if "probe" in per and "finetune" in per]
    suite = [("suite", 100 * (statistics.fmean(s[n]["finetune"]["mean"] for n in both) - statistics.fmean(s[n]["probe"]["mean"] for n in both)))] if both else []
    trio = [n for n, per in s.items() if {"probe", "finetune", "auto"} <= per.keys()]
    lines += [
        "", "Targets:",
        check("finetune >= probe - 0.5 point on every set", [(n, 100 * (s[n]["finetune"]["mean"] - s[n]["probe"]["mean"])) for n in both], -0.5),
        check("suite mean finetune >= probe + 2 points", suite, 2.0),
        check("auto within 0.5 point of max(probe, finetune) on every set", [(n, 100 * (s[n]["auto"]["mean"] - max(s[n]["probe"]["mean"], s[n]["finetune"]["mean"]))) for n in trio], -0.5),
        check("auto mean wall time <= finetune's on every set", [(n, s[n]["finetune"]["wall"] - s[n]["auto"]["wall"]) for n in s if {"auto", "finetune"} <= s[n].keys()], 0.0, "s"),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default=ALL_SETS)
    p.add_argument("--strategies", default="probe,finetune,auto")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--max-train", type=int, default=300)
    p.add_argument("--max-eval", type=int, default=600)
    p.add_argument("--devdata", type=Path, default=Path("~/devdata"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/recipes/recipes.json"))
    p.add_argument("--jobs", type=int, default=1, help="sets run in parallel processes")
    p.add_argument("--cache-dir", default=None, help="feature cache (default: transferlab's)")
    p.add_argument("--resume", action="store_true", help="skip (set, strategy, seed) rows already done in <out>.jsonl")
    p.add_argument("--table-only", action="store_true", help="only print the table of <out>.jsonl")
    p.add_argument("--select", action="store_true", help="score a holdout of train, never test: for choosing defaults")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    sets, strategies = args.sets.split(","), args.strategies.split(",")
    seeds = [int(x) for x in args.seeds.split(",")]
    log = args.out.with_suffix(".jsonl")
    if not args.table_only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        same = {"max_train": args.max_train, "max_eval": args.max_eval}
        done = {(r["set"], r["strategy"], r["seed"]) for r in read_rows(log) if "error" not in r and same.items() <= r.items()} if args.resume else set()
        if not args.resume and log.exists():
            log.replace(log.with_name(log.name + ".bak"))  # a fresh suite; the previous results stay in .bak
        groups = {n: [(st, sd) for st in strategies for sd in seeds if (n, st, sd) not in done] for n in sets}
        groups = {n: todo for n, todo in groups.items() if todo}
        common = {"max_train": args.max_train, "max_eval": args.max_eval, "cache_dir": args.cache_dir, "select": args.select}
        paths = {n: str(set_path(n, args.devdata.expanduser())) for n in groups}
        if args.jobs <= 1:
            for n, todo in groups.items():
                run_set(n, paths[n], todo, common, str(log), None)
        else:
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                for f in [pool.submit(run_set, n, paths[n], todo, common, str(log), max(1, 2 // args.jobs)) for n, todo in groups.items()]:
                    f.result()
    rows = read_rows(log)  # everything in the file (resumed rows included), the requested strategies first
    strategies += sorted({r["strategy"] for r in rows} - set(strategies))
    if not args.table_only:
        args.out.write_text(json.dumps({"rows": rows, "summary": summarize(rows)}, indent=1, default=str) + "\n")
    print(table(rows, strategies))


if __name__ == "__main__":
    main()
