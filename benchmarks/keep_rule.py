"""What the keep rule makes of fine-tuning recipes: per set, the tuned network's score always kept and kept
only when it beats the probe in ``--threshold`` of bootstrap resamples (else the probe), and kept by an oracle that
knows the scored images (the most any keep rule could gain), from the rows that
``recipes.py --select`` wrote with ``min_win_rate=0``. No training: it reads row files.

    R=benchmarks/results/recipes-select; .venv/bin/python benchmarks/keep_rule.py --probe $R/select-judge-refit-fullsize.jsonl,$R/select-default-fullsize.jsonl \
        --recipe 192px=$R/select-judge-refit-fullsize.jsonl,$R/select-default-fullsize.jsonl --recipe 224px=$R/select-size224-fullsize.jsonl

A recipe may list several files, comma-separated; a later file's row replaces an earlier one's for the same
set and seed. Only (set, seed) pairs that every recipe and the probe have are compared. Gains are in points
over the probe: mean over seeds per set, then the suite mean and the worst set.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipes import read_rows  # noqa: E402

Key = tuple[str, int]


def load(paths: str, probe: bool) -> dict[Key, dict]:
    """(set, seed) -> row, from comma-separated .jsonl files: probe rows, or fine-tuning rows with a win rate."""
    rows: dict[Key, dict] = {}
    for path in paths.split(","):
        if not Path(path).is_file():
            raise SystemExit(f"no row file at {path}: give the .jsonl files that recipes.py --select wrote")
        for row in read_rows(Path(path)):
            if "error" not in row and (row["strategy"] == "probe") == probe and (probe or row.get("win_rate") is not None):
                rows[(row["set"], row["seed"])] = row
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--probe", required=True, help="row files holding the probe's rows")
    p.add_argument("--recipe", action="append", required=True, help="NAME=FILE[,FILE]: one recipe's fine-tuning rows")
    p.add_argument("--threshold", type=float, default=0.9)
    args = p.parse_args()
    probe = load(args.probe, probe=True)
    recipes = {spec.split("=", 1)[0]: load(spec.split("=", 1)[1], probe=False) for spec in args.recipe}
    keys = set(probe).intersection(*recipes.values())
    sets = sorted({s for s, _ in keys})
    gains: dict[str, dict[str, list[float]]] = {name: {"always": [], "kept": [], "oracle": []} for name in recipes}
    print("| set | seeds | probe | " + " | ".join(f"{n}: always kept / kept at {args.threshold} (win rates)" for n in recipes) + " |")
    print("|---|---|---|" + "---|" * len(recipes))
    for s in sets:
        seeds = sorted(seed for name, seed in keys if name == s)
        base = statistics.mean(probe[(s, k)]["accuracy"] for k in seeds)
        cells = []
        for name, rows in recipes.items():
            always = statistics.mean(rows[(s, k)]["accuracy"] for k in seeds)
            kept = statistics.mean(rows[(s, k)]["accuracy"] if rows[(s, k)]["win_rate"] >= args.threshold else probe[(s, k)]["accuracy"] for k in seeds)
            gains[name]["always"].append(100 * (always - base))
            gains[name]["kept"].append(100 * (kept - base))
            oracle = statistics.mean(max(rows[(s, k)]["accuracy"], probe[(s, k)]["accuracy"]) for k in seeds)  # no rule can beat it
            gains[name]["oracle"].append(100 * (oracle - base))
            wins = " / ".join(f"{rows[(s, k)]['win_rate']:.2f}" for k in seeds)
            cells.append(f"{always:.3f} / {kept:.3f} ({wins})")
        print(f"| {s} | {','.join(map(str, seeds))} | {base:.3f} | " + " | ".join(cells) + " |")
    for name, g in gains.items():
        for how, values in g.items():
            label = {"always": "always kept", "kept": f"kept at {args.threshold}", "oracle": "kept by an oracle (when it beats the probe on the scored images)"}[how]
            print(f"{name}, {label}: mean gain {statistics.mean(values):+.2f} points, worst set {min(values):+.2f}")
    for name, rows in recipes.items():
        walls = {s: round(statistics.median(rows[key]["wall_s"] for key in keys if key[0] == s)) for s in sets}
        epochs = sum(len(rows[key]["val_history"]) - 1 for key in keys)
        print(f"{name}: median wall s per set {walls}; {epochs} tuned epochs in all")


if __name__ == "__main__":
    main()
