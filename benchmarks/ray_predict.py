"""Throughput of `predict --ray` on this machine, with a cold and a warm feature cache: images/s of plain
`predict` vs Ray Data with 1 and 2 replicas.

    PYTHONPATH=src .venv/bin/python benchmarks/ray_predict.py [--data ../shared/data/oxford-iiit-pet-mini] [--rounds 2] [--limit N]

Measured side by side in one run, the set-ups taking turns each round (the machine is shared: compare the
ratios within a round). Each set-up runs twice per round on a feature cache of its own: "cold" starts from
an empty cache (every image decoded and run through the network; the cache filled), "warm" runs the same
job again into a new output folder on the cache the cold run filled (files read and hashed, the features
read from the cache, nothing decoded). Each Ray job starts its replicas (processes that import torch and
load the model) on one local Ray instance started once, and writes its Parquet parts from the replicas.
"whole job" is files -> predictions. For Ray, "start" is the whole time of the same cold job on 16 images
(starting the replicas, shipping the model, the first blocks) and "marginal" the rate beyond it,
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
SMALL = 16  # images of the "start" job
PART_SIZE = 64  # files per part: a few parts per replica even on the mini set


def timed(job) -> float:
    started = time.perf_counter()
    job()
    return time.perf_counter() - started


def cold_and_warm(run: tl.Run, files: list[Path], workers: int) -> tuple[float, float]:
    """Seconds for the job on an empty feature cache, then again on the cache it filled (0 workers: plain `predict`)."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        if not workers:
            return tuple(timed(lambda: run.predict(files, 5, cache_dir=cache)) for _ in range(2))  # type: ignore[return-value]
        config = RayConfig(workers=workers)
        return tuple(timed(lambda i=i: ray_predict(run, files, Path(tmp) / f"out{i}", 5, config=config, cache_dir=cache, part_size=PART_SIZE)) for i in range(2))  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="Use only the first N images (0: all).")
    args = parser.parse_args()
    import ray

    files = sorted((args.data / "images").glob("*.jpg"))[: args.limit or None]
    if len(files) <= SMALL:
        parser.error(f"expected more than {SMALL} photos in {args.data / 'images'}, found {len(files)} — pass --data")
    run = tl.from_backbone()
    ray.init(num_cpus=cpu_count(), include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    n = len(files)
    times: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for workers in (0, 1, 2):
            name = "predict" if not workers else f"ray {workers}"
            if workers:
                small = cold_and_warm(run, files[:SMALL], workers)[0]
                times.setdefault(f"{name} start", []).append(small)
            cold, warm = cold_and_warm(run, files, workers)
            times.setdefault(f"{name} cold", []).append(cold)
            times.setdefault(f"{name} warm", []).append(warm)
            print(f"round {r + 1} {name:<8} cold {cold:6.1f} s   warm {warm:6.1f} s" + (f"   start ({SMALL} images) {small:5.1f} s" if workers else ""), flush=True)
    ray.shutdown()
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"\n{n} images, {pick_runtime().describe()}, {cpu_count()} cores; medians over {args.rounds} round(s); parts of {PART_SIZE} files")
    print(f"{'':<28} {'cold cache':>14} {'warm cache':>14}")
    print(f"{'predict':<28} {n / med['predict cold']:8.1f} img/s {n / med['predict warm']:8.1f} img/s")
    marginal = {}
    for w in (1, 2):
        cold, warm = med[f"ray {w} cold"], med[f"ray {w} warm"]
        marginal[w] = (n - SMALL) / (cold - med[f"ray {w} start"])
        print(f"{f'predict --ray --workers {w}':<28} {n / cold:8.1f} img/s {n / warm:8.1f} img/s   "
              f"({med['predict cold'] / cold:.2f}x / {med['predict warm'] / warm:.2f}x predict)   start {med[f'ray {w} start']:5.1f} s   marginal (cold) {marginal[w]:6.1f} img/s")
    print(f"\nper-replica marginal rate here (cold): {marginal[1]:.1f} img/s (one replica on this CPU). On paper, 1,000,000 images:")
    for k in (1, 8, 32):
        hours = 1e6 / (k * marginal[1]) / 3600
        print(f"  {k:>3} such replicas: {hours:6.2f} h ({k * hours:.1f} replica-hours)")


if __name__ == "__main__":
    main()
