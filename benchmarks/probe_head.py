"""The probe head's fit: its time, and that the faster path keeps the suite's accuracy.

    .venv/bin/python benchmarks/probe_head.py speed [--rounds 2]
    .venv/bin/python benchmarks/probe_head.py suite [--cap 0|300] [--devdata ~/devdata] [--cache-dir DIR] [--out FILE]

Both compare, side by side in one process, the head as fitted now (``ProbeConfig()``: the L2 path in float32 to a
loose tolerance, stopped after ``patience`` worse strengths, the chosen strength refitted in float32) with the
same code set to the earlier recipe (the whole grid to 1e-9, the refit in float64: ``patience=0,
path_tolerance=1e-9, dtype=float64``).

``speed``: synthetic 10,000 x 1,280 features, 37 classes (``extract.py``'s case e), and the lite0 features of
Caltech-101's 5,784 training photos (101 classes) when the suite is there.
``suite``: every development set's cached EfficientNet-Lite0 features (full size, or ``--cap`` training images per
set, stratified by seed), each set's own splits (val where it has one, else the probe's 20 % holdout, seeds
0-2); accuracy on the test split of both heads, the strength each chose and the L-BFGS function evaluations.
Extracting features the first time takes minutes (about 24,000 photos); after that the run takes the fits only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OXFORD = ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini"
SETS = ("oxford", "clothing", "sign-digits", "dtd10", "brain-mri", "magnetic-tiles", "caltech101")


def recipes() -> dict[str, dict]:
    from transferlab.train import ProbeConfig

    return {"before": {"config": ProbeConfig(patience=0, path_tolerance=1e-9), "dtype": torch.float64},
            "now": {"config": ProbeConfig(), "dtype": torch.float32}}


def fit(x, y, c, xv=None, yv=None, seed: int = 0, recipe: dict | None = None):
    from transferlab.train import fit_probe

    return fit_probe(x, y, c, xv, yv, recipe["config"], seed, dtype=recipe["dtype"])


def set_features(name: str, devdata: Path, cache_dir: str | None) -> dict[str, np.ndarray]:
    """Pooled lite0 features and labels of the set's train / val / report splits (as ``train`` splits it)."""
    import transferlab as tl
    from transferlab.data.roles import split_roles
    from transferlab.run import steps
    from transferlab.run.config import TrainConfig

    setup = steps.load_backbone(TrainConfig(backbone="efficientnet_lite0"), cache_dir, None)
    roles = split_roles(tl.load_dataset(OXFORD if name == "oxford" else devdata / name, seed=0))
    feats, _ = steps.features_of(setup, roles.train + roles.val + roles.report)
    out = {}
    for split, samples in (("train", roles.train), ("val", roles.val), ("report", roles.report)):
        x, y = steps.features_and_labels(samples, feats.rows)
        if x is not None:
            out[f"x_{split}"], out[f"y_{split}"] = x.float().numpy(), y
    return out


def capped(d: dict[str, np.ndarray], cap: int, seed: int) -> dict[str, np.ndarray]:
    """At most ``cap`` training images (a quarter of that in val), stratified, drawn by ``seed``."""
    if not cap:
        return d
    rng, out = np.random.default_rng(seed), dict(d)
    y = d["y_train"]
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:max(1, round(cap * (y == c).mean()))] for c in np.unique(y)]))
    out["x_train"], out["y_train"] = d["x_train"][keep], y[keep]
    if "y_val" in d:
        kv = np.sort(rng.permutation(len(d["y_val"]))[:cap // 4])
        out["x_val"], out["y_val"] = d["x_val"][kv], d["y_val"][kv]
    return out


def evaluations(run) -> int:
    """L-BFGS function evaluations of ``run()`` (float64 ones counted twice: each costs about two float32 ones)."""
    counts: list[int] = []
    real = torch.optim.LBFGS.step

    def step(self, closure):
        loss = real(self, closure)
        counts.append(self.state[self._params[0]]["func_evals"] * (2 if self._params[0].dtype == torch.float64 else 1))
        return loss

    torch.optim.LBFGS.step = step
    try:
        result = run()
    finally:
        torch.optim.LBFGS.step = real
    return result, sum(counts)


def speed(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    n, d, c = 10_000, 1_280, 37
    y = rng.integers(0, c, n)
    x = (np.maximum(rng.normal(size=(c, d))[y] * 0.3 + rng.normal(size=(n, d)), 0)).astype(np.float32)
    cases = {"synthetic 10,000 x 1,280, 37 classes": (x, y, c, None, None)}
    if (args.devdata / "caltech101").is_dir():
        f = set_features("caltech101", args.devdata, args.cache_dir)
        cases["caltech101 lite0, 5,784 x 1,280, 101 classes"] = (f["x_train"], f["y_train"], int(f["y_train"].max()) + 1, None, None)
    for label, (xt, yt, cc, xv, yv) in cases.items():
        times: dict[str, list[float]] = {"before": [], "now": []}
        for _ in range(args.rounds):
            for name, recipe in recipes().items():
                start = time.perf_counter()
                fit(xt, yt, cc, xv, yv, 0, recipe)
                times[name].append(time.perf_counter() - start)
        b, a = min(times["before"]), min(times["now"])
        print(f"{label:48s} before {b:6.1f} s   now {a:6.1f} s   = {b / a:.1f}x faster   (best of {args.rounds})")


def suite(args: argparse.Namespace) -> None:
    rows = []
    for name in SETS:
        if name != "oxford" and not (args.devdata / name).is_dir():
            print(f"{name}: not under {args.devdata}, skipped")
            continue
        full = set_features(name, args.devdata, args.cache_dir)
        c = int(max(full["y_train"].max(), full["y_report"].max())) + 1
        for seed in (0, 1, 2):
            if seed and "y_val" in full and not args.cap:
                break  # a given val split and no cap: the fit does not depend on the seed
            d = capped(full, args.cap, seed)
            row = {"set": name, "seed": seed, "cap": args.cap, "n_train": len(d["y_train"])}
            for label, recipe in recipes().items():
                start = time.perf_counter()
                head, evals = evaluations(lambda: fit(d["x_train"], d["y_train"], c, d.get("x_val"), d.get("y_val"), seed, recipe))
                pred = (torch.from_numpy(d["x_report"]) @ head.weight.T + head.bias).argmax(1).numpy()
                row |= {f"{label}_accuracy": float((pred == d["y_report"]).mean()), f"{label}_l2": head.l2, f"{label}_evals": evals, f"{label}_s": round(time.perf_counter() - start, 2)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    per_set = {s: [r for r in rows if r["set"] == s] for s in dict.fromkeys(r["set"] for r in rows)}
    mean = {k: statistics.mean(statistics.mean(r[f"{k}_accuracy"] for r in rs) for rs in per_set.values()) for k in ("before", "now")}
    diffs = {s: 100 * statistics.mean(r["now_accuracy"] - r["before_accuracy"] for r in rs) for s, rs in per_set.items()}
    evals = {k: sum(r[f"{k}_evals"] for r in rows) for k in ("before", "now")}
    same = sum(r["now_l2"] == r["before_l2"] for r in rows)
    print(f"suite mean accuracy: before {mean['before']:.4f}, now {mean['now']:.4f} ({100 * (mean['now'] - mean['before']):+.2f} points); "
          f"per set {', '.join(f'{s} {d:+.2f}' for s, d in diffs.items())}")
    print(f"same strength chosen in {same} of {len(rows)} fits; L-BFGS evaluations {evals['before']:,} -> {evals['now']:,} ({evals['before'] / evals['now']:.1f}x fewer)")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "mean": mean, "per_set_points": diffs, "evaluations": evals, "same_l2": same}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("speed", "suite"))
    parser.add_argument("--devdata", type=Path, default=Path.home() / "devdata")
    parser.add_argument("--cache-dir", default=None, help="feature cache (default: the usual one, $TRANSFERLAB_CACHE)")
    parser.add_argument("--cap", type=int, default=0, help="suite: at most this many training images per set (0: all)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    (speed if args.what == "speed" else suite)(args)


if __name__ == "__main__":
    main()
