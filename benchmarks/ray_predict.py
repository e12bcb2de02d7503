"""Scaling of `predict --ray` on this machine: images/s of plain `predict` vs Ray Data with 1 and 2 replicas.

    PYTHONPATH=src .venv/bin/python benchmarks/ray_predict.py [--data ../shared/data/oxford-iiit-pet-mini] [--rounds 2]

Measured side by side in one run, the set-ups taking turns each round (the machine is shared: compare the
ratios within a round). Every job starts cold: plain `predict` with an empty feature cache (nothing reused),
a Ray job starting its replicas (processes that import torch and load the model) on one local Ray instance
started once. "whole job" is files -> predictions. For Ray, "start" is the whole time of the same job on
16 images (starting the replicas, shipping the model, the first batches) and "marginal" the rate beyond it,
(N - 16) / (t(N) - t(16)). The last lines turn the measured per-replica rate into time for 1M images on K
replicas (on paper: linear scaling assumed).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import transferlab as tl
from transferlab.cluster import RayConfig, ray_predict
from transferlab.features.runtime import cpu_count, pick_runtime

ROOT = Path(__file__).resolve().parents[1]


def plain(run: tl.Run, files: list[Path]) -> float:
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        run.predict(files, 5, cache_dir=cache)
        return time.perf_counter() - started


def on_ray(run: tl.Run, files: list[Path], workers: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        ray_predict(run, files, Path(out) / "p.parquet", 5, config=RayConfig(workers=workers))
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="Use only the first N images (0: all).")
    args = parser.parse_args()
    import ray

    files = sorted((args.data / "images").glob("*.jpg"))[: args.limit or None]
    run = tl.from_backbone()
    ray.init(num_cpus=cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    n, small = len(files), 16
    times: dict[str, list[float]] = {"predict": [], "ray 1 start": [], "ray 1": [], "ray 2 start": [], "ray 2": []}
    for r in range(args.rounds):
        for name in times:
            workers = 0 if name == "predict" else int(name.split()[1])
            times[name].append(plain(run, files) if not workers else on_ray(run, files[:small] if name.endswith("start") else files, workers))
            print(f"round {r + 1} {name:<12} {times[name][-1]:6.1f} s", flush=True)
    ray.shutdown()
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"\n{n} images, {pick_runtime().describe()}, {cpu_count()} cores; medians over {args.rounds} round(s)")
    print(f"{'predict':<28} whole job {n / med['predict']:6.1f} img/s")
    marginal = {}
    for w in (1, 2):
        marginal[w] = (n - small) / (med[f"ray {w}"] - med[f"ray {w} start"])
        print(f"{f'predict --ray --workers {w}':<28} whole job {n / med[f'ray {w}']:6.1f} img/s ({med['predict'] / med[f'ray {w}']:.2f}x predict)   start {med[f'ray {w} start']:5.1f} s   marginal {marginal[w]:6.1f} img/s")
    print(f"\nper-replica marginal rate here: {marginal[1]:.1f} img/s (one replica on this CPU). On paper, 1,000,000 images:")
    for k in (1, 8, 32):
        hours = 1e6 / (k * marginal[1]) / 3600
        print(f"  {k:>3} such replicas: {hours:6.2f} h ({k * hours:.1f} replica-hours)")


if __name__ == "__main__":
    main()
