"""What proving a run and a cache intact costs: loading a run with and without checking its digests, and
reading a 10,000 x 1,280 float32 feature-cache shard with and without checking its digest, side by side
in one process (best of N; the ratio is what to compare across machines).

    .venv/bin/python benchmarks/integrity.py [--repeat 7] [--backbone efficientnet_lite0]

A run "without digests" is the same folder with ``digests.json`` removed and ``model.json`` no longer naming
it (how runs of earlier versions look: nothing is checked); a shard "without digest" is the same tensor
saved without the digest in its metadata (how caches of earlier versions look).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save

import transferlab as tl
from transferlab.features import FeatureCache


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def best_pair(a: Callable[[], object], b: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best of ``repeat`` for each, run alternately: a busy machine slows both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for fn, out in ((a, times[0]), (b, times[1])):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return min(times[0]), min(times[1])


def run_load(root: Path, backbone: str, repeat: int) -> None:
    checked = root / "checked"
    tl.from_backbone(backbone).save(checked)
    unchecked = root / "unchecked"
    unchecked.mkdir()
    for name in ("model.safetensors",):
        os.link(checked / name, unchecked / name)
    meta = json.loads((checked / "model.json").read_text())
    meta.pop("digests")
    (unchecked / "model.json").write_text(json.dumps(meta, indent=2))
    size = (checked / "model.safetensors").stat().st_size
    data = (checked / "model.safetensors").read_bytes()
    digest = best(lambda: hashlib.sha256(data).hexdigest(), repeat)
    with_digests, without = best_pair(lambda: tl.load(checked), lambda: tl.load(unchecked), repeat)
    print(f"run of {backbone}: model.safetensors {size / 1e6:.1f} MB")
    print(f"  sha256 of the weights alone      {digest * 1e3:7.1f} ms")
    print(f"  tl.load, digests checked         {with_digests * 1e3:7.1f} ms")
    print(f"  tl.load, no digests (older runs) {without * 1e3:7.1f} ms   (checking adds {100 * (with_digests / without - 1):+.0f} %)")


def shard_read(root: Path, repeat: int, rows: int = 10_000, dim: int = 1_280) -> None:
    feats = torch.randn(rows, dim)
    hashes = [f"{i:032x}" for i in range(rows)]
    new = FeatureCache(root / "new", {"k": "v"})
    new.put(hashes, feats)
    old = FeatureCache(root / "old", {"k": "v"})
    (old.dir / "old.safetensors").write_bytes(save({"features": feats}, metadata={"hashes": json.dumps(hashes)}))
    with_digest, without = best_pair(lambda: new.get(hashes), lambda: old.get(hashes), repeat)
    digest = best(lambda: hashlib.sha256(feats.numpy()).hexdigest(), repeat)
    print(f"cache shard {rows:,} x {dim:,} float32 ({rows * dim * 4 / 1e6:.0f} MB): get() of every row")
    print(f"  sha256 of the features alone     {digest * 1e3:7.1f} ms")
    print(f"  digest checked                   {with_digest * 1e3:7.1f} ms")
    print(f"  no digest (older shards)         {without * 1e3:7.1f} ms   (checking adds {100 * (with_digest / without - 1):+.0f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_load(Path(tmp), args.backbone, args.repeat)
        shard_read(Path(tmp), args.repeat)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
