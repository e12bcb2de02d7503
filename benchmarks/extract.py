"""Feature-extraction speed on this machine (default backbone, 224 px), printed as a table.

    .venv/bin/python benchmarks/extract.py [--data ../shared/data/oxford-iiit-pet-mini]

(a) model only: random uint8 batches through the fastest path (channels_last, bf16 where supported,
    frozen graph, one stream per core); (b) end to end: JPEG files on disk -> decoded -> features in a
    fresh cache, whole run and steady state;
(c) naive baseline: torchvision ImageFolder + DataLoader + fp32 NCHW forward; (d) `train` feature phase,
cold cache vs warm cache; (e) fitting the probe head on 10,000 x 1,280 features.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import transferlab as tl
from transferlab.features import FeatureCache, cache_key, extract_features, pick_runtime
from transferlab.features.runtime import cpu_count, inference, optimize_for_inference, single_threaded_ops
from transferlab.train import fit_probe

ROOT = Path(__file__).resolve().parents[1]


def model_only(model, runtime, batch: int = 16, batches: int = 24) -> float:
    """The extraction's own fastest mode: one single-threaded stream per core, frozen bf16 graph."""
    from concurrent.futures import ThreadPoolExecutor

    streams = cpu_count()
    x = torch.randint(0, 256, (batch, 3, *model.preprocess.input_size), dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    with single_threaded_ops(streams > 1), ThreadPoolExecutor(streams) as pool:
        fast = optimize_for_inference(model.feature_extractor(), runtime, x)

        def forward(_: int) -> None:
            with inference(runtime):
                fast(x)

        list(pool.map(forward, range(2 * streams)))  # warm-up
        start = time.perf_counter()
        list(pool.map(forward, range(batches)))
    return batch * batches / (time.perf_counter() - start)


def end_to_end(model, runtime, paths: list[Path]) -> tuple[float, float]:
    """Whole run (hashing, graph freezing, decoding, forward, cache writes) and its steady state."""
    ticks: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp, cache_key(model, runtime))
        ex = extract_features(model, paths, cache=cache, runtime=runtime, progress=lambda d, t: ticks.append((time.perf_counter(), d)))
    warm = next(i for i, (_, d) in enumerate(ticks) if d >= len(paths) // 4)  # past the one-off graph freezing
    (t0, d0), (t1, d1) = ticks[warm], ticks[-1]
    return len(ex.ok) / ex.seconds, (d1 - d0) / (t1 - t0)


def naive(model, paths: list[Path]) -> float:
    from timm.data import create_transform
    from torchvision.datasets import ImageFolder

    pre = model.preprocess
    transform = create_transform(input_size=(3, *pre.input_size), interpolation=pre.interpolation, crop_pct=pre.crop_pct, mean=pre.mean, std=pre.std)
    net = model.net.eval()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "all").mkdir()
        for p in paths:
            (Path(tmp) / "all" / p.name).symlink_to(p.resolve())
        loader = torch.utils.data.DataLoader(ImageFolder(tmp, transform), batch_size=64, num_workers=cpu_count())
        start, n = time.perf_counter(), 0
        with torch.inference_mode():
            for x, _ in loader:
                net.forward_head(net.forward_features(x), pre_logits=True)
                n += len(x)
    return n / (time.perf_counter() - start)


def train_twice(data: Path) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cold = tl.train(tl.load_dataset(data), cache_dir=tmp).meta["timing"]["features_s"]
        warm = tl.train(tl.load_dataset(data), cache_dir=tmp).meta["timing"]["features_s"]
    return cold, warm


def probe_fit(n: int = 10_000, d: int = 1_280, c: int = 37) -> float:
    rng = np.random.default_rng(0)
    y = rng.integers(0, c, n)
    x = (np.maximum(rng.normal(size=(c, d))[y] * 0.3 + rng.normal(size=(n, d)), 0)).astype(np.float32)
    start = time.perf_counter()
    fit_probe(x, y, c)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()
    ds = tl.load_dataset(args.data)
    paths = [s.path for s in ds.samples]
    model = tl.create_backbone(args.backbone).model
    runtime = pick_runtime()
    print(f"{args.backbone}, {len(paths)} images from {args.data}, {cpu_count()} cores, torch {torch.__version__}, {runtime.describe()}")
    a = model_only(model, runtime)
    print(f"(a) model only, fastest mode        {a:8.1f} img/s")
    b, b_steady = end_to_end(model, runtime, paths)
    print(f"(b) end to end, JPEG -> cache       {b:8.1f} img/s   = {b / a:.2f} x (a)   (steady state after the first quarter: {b_steady:.1f} img/s = {b_steady / a:.2f} x (a))")
    c = naive(tl.create_backbone(args.backbone).model, paths)
    print(f"(c) naive ImageFolder + fp32 NCHW   {c:8.1f} img/s   (b) = {b / c:.1f} x (c)")
    cold, warm = train_twice(args.data)
    print(f"(d) train feature phase: cold {cold:.2f} s, warm {warm:.3f} s   = {cold / warm:.0f} x faster")
    print(f"(e) probe head fit, 10,000 x 1,280 features, 37 classes: {probe_fit():.1f} s")


if __name__ == "__main__":
    main()
