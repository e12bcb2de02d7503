"""PyTorch (eager) vs onnxruntime on this CPU: latency of one image and throughput of batches.

    PYTHONPATH=src python benchmarks/export.py [--model efficientnet_lite0] [--threads 2] [--batch 32] [--repeats 30]

The model is exported with ``transferlab.export`` (parity checked on Oxford mini test photos when present),
then both runtimes get the same (B, 3, H, W) float pixels in [0, 1]; preprocessing (decode, resize) is
excluded, it is the same code for both. Reports the median and p95 of ``--repeats`` timed calls after warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import transferlab as tl

ROOT = Path(__file__).resolve().parents[1]
OXFORD = ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini" / "images"


def timings(fn, repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0", help="run folder or backbone name")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    run = tl.open_model(args.model)
    photos = sorted(OXFORD.glob("*.jpg"))[:32] if OXFORD.is_dir() else None
    with tempfile.TemporaryDirectory() as tmp:
        result = tl.export(run, "onnx", Path(tmp) / "model.onnx", images=photos, limit=64)
        p = result.parity
        print(f"export {result.seconds:.1f} s; parity on {p.source}: top-1 {p.top1_agree}/{p.n}, max |Δlogit| {p.max_abs_logit_diff:.2e} (ok={p.ok})")
        onnx_model = tl.OnnxModel(result.path, threads=args.threads)
        model = run.model.float().eval()
        h, w = model.preprocess.input_size
        print(f"{args.model} at {h}x{w}, {args.threads} threads, torch {torch.__version__}, median / p95 of {args.repeats} calls")
        print(f"{'runtime':<12} {'1 image ms (p50/p95)':>22} {'batch ' + str(args.batch) + ' img/s':>16}")
        for name, fn in (("pytorch", lambda x: model(torch.from_numpy(x))), ("onnxruntime", onnx_model.logits)):
            one = np.random.rand(1, 3, h, w).astype(np.float32)
            many = np.random.rand(args.batch, 3, h, w).astype(np.float32)
            with torch.inference_mode():
                single = timings(lambda: fn(one), args.repeats)
                batch = timings(lambda: fn(many), max(5, args.repeats // 5))
            print(f"{name:<12} {1e3 * statistics.median(single):>10.1f} / {1e3 * p95(single):<9.1f} {args.batch / statistics.median(batch):>16.1f}")


if __name__ == "__main__":
    main()
