"""Weight-space ensembles (WiSE-FT) on the selection splits: is a network between the pretrained and the
fine-tuned weights better than either? Evidence for choosing a default (issue 12), never a test split.

    TRANSFERLAB_CACHE=/root/.cache/transferlab-bench .venv/bin/python benchmarks/wise.py \
        --sets oxford,dtd10,magnetic-tiles --seeds 0 --out benchmarks/results/recipes-select/select-wise.jsonl

For each set (its selection split, as ``recipes.py --select``: a stratified quarter of train scored, test
unused) and seed: the default fine-tuning with the tuned network always kept, then for each ``alpha`` the
backbone ``(1 - alpha) * pretrained + alpha * tuned`` (Wortsman et al. 2022, "Robust fine-tuning of zero-shot
models"), its features of every image, and an L-BFGS head: fitted on train with L2 chosen on val (its
per-image validation results: what a keep rule sees) and refitted on train + val (its accuracy on the scored
images: what a run would keep). alpha 0 is the probe; alpha 1 is the fine-tuned run as kept, and reproduces
its scored accuracy. One JSON line per (set, seed, alpha); a summary per set at the end.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import transferlab as tl
from transferlab.data.roles import carve, split_roles
from transferlab.features import FeatureCache, cache_key, extract_features, pick_runtime
from transferlab.models import create_backbone
from transferlab.models.defaults import DEFAULT_BACKBONE
from transferlab.train import FinetuneConfig, ProbeConfig
from transferlab.train.finetune import win_rate
from transferlab.train.probe import fit_probe

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipes import ALL_SETS, cap_dataset, selection_split, set_path  # noqa: E402

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def blend(pretrained: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float, head: set[str]) -> dict[str, torch.Tensor]:
    """The backbone's tensors interpolated (counters and the classifier taken from ``tuned``)."""
    return {k: (torch.lerp(pretrained[k].float(), v.float(), alpha).to(v.dtype) if v.is_floating_point() and k not in head else v) for k, v in tuned.items()}


def features(model, samples, runtime, cache_dir) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of ``samples`` with ``model``'s backbone as it is (cached by its fingerprint)."""
    ex = extract_features(model, [s.path for s in samples], cache=FeatureCache(cache_dir, cache_key(model, runtime)), runtime=runtime)
    if ex.failed:
        raise RuntimeError(f"unreadable files left in the split: {list(ex.failed)[:3]}")
    return np.asarray(ex.features), np.array([s.label for s in samples])


def accuracy(fit, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    logits = torch.as_tensor(x, dtype=torch.float64) @ fit.weight.double().T + fit.bias.double()
    return (logits.argmax(1).numpy() == y)


def run_set(name: str, path: Path, seeds: list[int], cache_dir: str | None, out: Path) -> None:
    ds = tl.load_dataset(path, seed=0)
    ds, caps = cap_dataset(selection_split(ds), 1_000_000, 1_000_000)
    print(f"[{name}] {caps}", file=sys.stderr, flush=True)
    runtime = pick_runtime()
    for seed in seeds:
        started = time.perf_counter()
        run = tl.train(ds, strategy="finetune", seed=seed, cache_dir=cache_dir, finetune_config=FinetuneConfig(min_win_rate=0.0))
        train_s = time.perf_counter() - started
        data = copy.deepcopy(ds)  # as the run did: files that fail to decode leave it before the split roles
        base = create_backbone(DEFAULT_BACKBONE).model
        data.drop(extract_features(base, [s.path for s in data.samples], cache=FeatureCache(cache_dir, cache_key(base, runtime)), runtime=runtime).failed)
        roles = split_roles(data)
        train, val = (roles.train, roles.val) if roles.val else carve(roles.train, ProbeConfig().val_frac, seed)
        scored = roles.report
        tuned = {k: v.detach().clone() for k, v in run.model.net.state_dict().items()}
        pretrained = base.net.state_dict()
        head = {k for k in tuned if k.startswith(("classifier.", "head.", "fc."))}
        probe_val = None
        for alpha in ALPHAS:
            t0 = time.perf_counter()
            model = create_backbone(DEFAULT_BACKBONE).model
            model.set_head(torch.zeros(len(ds.classes), model.num_features), torch.zeros(len(ds.classes)), list(ds.classes))
            model.net.load_state_dict(blend(pretrained, tuned, alpha, head))
            (xt, yt), (xv, yv), (xs, ys) = (features(model, part, runtime, cache_dir) for part in (train, val, scored))
            judge = fit_probe(xt, yt, len(ds.classes), xv, yv, ProbeConfig(), seed, refit=False)
            kept = fit_probe(xt, yt, len(ds.classes), xv, yv, ProbeConfig(), seed, refit=True)
            val_hits = accuracy(judge, xv, yv)
            probe_val = val_hits if alpha == 0.0 else probe_val
            row = {
                "set": name, "seed": seed, "alpha": alpha, "val_accuracy": float(val_hits.mean()), "scored_accuracy": float(accuracy(kept, xs, ys).mean()),
                "win_rate": win_rate([(bool(h), 0.0) for h in probe_val], [(bool(h), 0.0) for h in val_hits], seed=seed) if alpha else None,
                "val_hits": "".join("1" if h else "0" for h in val_hits), "run_accuracy": run.meta["metrics"]["accuracy"], "run_best_epoch": run.meta["finetune"]["best_epoch"],
                "train_s": round(train_s, 1), "blend_s": round(time.perf_counter() - t0, 1), "caps": caps,
            }
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"[{name} seed {seed} alpha {alpha}] val {row['val_accuracy']:.3f} scored {row['scored_accuracy']:.3f} win {row['win_rate']}", file=sys.stderr, flush=True)


def summarize(out: Path) -> None:
    """Per set, mean over seeds: validation and scored accuracy by alpha, and what two keep rules end with."""
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    by: dict[tuple[str, int], dict[float, dict]] = {}
    for r in rows:
        by.setdefault((r["set"], r["seed"]), {})[r["alpha"]] = r
    sets = sorted({s for s, _ in by})
    print("| set | seeds | " + " | ".join(f"alpha {a}: val / scored" for a in ALPHAS) + " | default rule | best alpha by val, same rule |")
    print("|---|---|" + "---|" * (len(ALPHAS) + 2))
    for name in sets:
        runs = [v for (s, _), v in by.items() if s == name and len(v) == len(ALPHAS)]
        if not runs:
            continue
        cells = [f"{np.mean([r[a]['val_accuracy'] for r in runs]):.3f} / {np.mean([r[a]['scored_accuracy'] for r in runs]):.3f}" for a in ALPHAS]

        def kept(r: dict, alphas: tuple[float, ...]) -> float:
            best = max(alphas, key=lambda a: (r[a]["val_accuracy"], a))  # ties: the larger alpha
            return r[best]["scored_accuracy"] if best and r[best]["win_rate"] >= 0.9 else r[0.0]["scored_accuracy"]

        default = np.mean([kept(r, (1.0,)) for r in runs])
        wise = np.mean([kept(r, tuple(a for a in ALPHAS if a)) for r in runs])
        print(f"| {name} | {len(runs)} | " + " | ".join(cells) + f" | {default:.3f} | {wise:.3f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default=ALL_SETS)
    p.add_argument("--seeds", default="0")
    p.add_argument("--devdata", type=Path, default=Path("~/devdata"))
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/recipes-select/select-wise.jsonl"))
    p.add_argument("--table-only", action="store_true")
    args = p.parse_args()
    if not args.table_only:
        for name in args.sets.split(","):
            run_set(name, set_path(name, args.devdata.expanduser()), [int(s) for s in args.seeds.split(",")], args.cache_dir, args.out)
    summarize(args.out)


if __name__ == "__main__":
    main()
