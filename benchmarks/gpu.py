"""The GPU path measured once, on a lent GPU machine (issue 17): one short script printing every figure.

    python benchmarks/gpu.py                 # on the GPU machine: ~3-5 minutes
    python benchmarks/gpu.py --tiny          # anywhere (CPU): a seconds-long check that every section runs

Needs only this repository (`src/` on the path is enough) and torch, torchvision, timm, safetensors,
pillow, numpy. Photos: `--data DIR` (any folder of JPEGs, e.g. ../shared/data/oxford-iiit-pet-mini/images);
without one, it writes synthetic 500x375 JPEGs (Oxford's typical size) so nothing has to be carried.
The bundled EfficientNet-Lite0 weights are used when their package is installed, else the same timm
architecture with random weights (speed is the same; the fidelity check is then less meaningful).

Sections (each prints its numbers, or FAILED with the reason, and the next one runs regardless):
  1. model only: uint8 batches of 256 through the feature extractor, bf16 autocast, channels_last, eager
     and torch.compile (compile time printed apart);
  2. end to end, JPEG files -> features in the on-disk cache:
     a. `extract_features` as shipped (Pillow decoding in threads),
     b. a DataLoader with worker processes around the same decoding,
     c. the device pipeline as shipped: `extract_features(decoder="gpu")` (batched nvJPEG decoding, Pillow-exact
        resize + crop on the GPU, reader threads, a side stream); its features are compared with the Pillow path's;
  3. naive baseline: torchvision ImageFolder + transforms + DataLoader, fp32 NCHW;
  4. fine-tuning: whole-network training steps on one resident batch (the bare step rate), bf16 autocast,
     channels_last, batch 128; 4b. a training epoch from the JPEG files, fed by the device pipeline (decode,
     per-image random resized crop + flip on the GPU) and by DataLoader workers (the CPU recipe).
The goal lines: device end-to-end / model-only eager, and device-fed epoch / bare step rate, each >= 0.5 on an
H100-class GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # runs from a bare checkout

import numpy as np  # noqa: E402
import torch  # noqa: E402

RESULTS: dict[str, float] = {}


def section(name: str):
    """Run one section; print FAILED with the last lines of the traceback instead of stopping."""
    def wrap(fn):
        def run(*args, **kwargs):
            print(f"\n== {name}", flush=True)
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # a benchmark reports every section it can; the failure is printed, not hidden
                print(f"FAILED: {type(err).__name__}: {err}")
                print("".join(traceback.format_exc().splitlines(True)[-6:]), end="")
                return None
        return run
    return wrap


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeat: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        sync(device)
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def load_model():
    import transferlab as tl

    try:
        return tl.create_backbone("efficientnet_lite0").model, "efficientnet_lite0 (bundled weights)"
    except Exception as err:  # the weights package is missing on a bare machine: same architecture, random weights
        import timm

        from transferlab.models.classifier import ImageClassifier
        from transferlab.models.preprocess import Preprocess

        net = timm.create_model("efficientnet_lite0", pretrained=False)
        names = [str(i) for i in range(net.num_classes)]
        print(f"(bundled weights unavailable: {err}; using random weights)")
        return ImageClassifier(net, Preprocess.from_timm(net), names), "efficientnet_lite0 (random weights)"


def photos(data: Path | None, n: int, side: tuple[int, int]) -> list[Path]:
    if data is not None:
        files = sorted(p for p in data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
        from transferlab.data import sniff

        files = [p for p in files if sniff(p) is None and p.read_bytes()[:3] == b"\xff\xd8\xff"][:n]  # real JPEGs only (GPU decoding)
        if files:
            return files
        print(f"(no JPEGs in {data}: generating them)")
    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="gpu-bench-")) / "photos" / "all"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (side[1] // 8, side[0] // 8, 3), dtype=np.uint8)
    for i in range(n):  # smooth, photo-like content compresses like a photo (noise would not)
        img = Image.fromarray(np.roll(base, i, axis=1)).resize(side, Image.Resampling.BICUBIC)
        img.save(folder / f"{i:05d}.jpg", quality=90)
    return sorted(folder.glob("*.jpg"))


@section("1. model only (uint8 -> features, bf16 autocast, channels_last)")
def model_only(model, runtime, batch: int, repeat: int, compile_: bool) -> None:
    from transferlab.features.runtime import inference

    net = model.feature_extractor().eval().to(runtime.device, memory_format=torch.channels_last)
    x = torch.randint(0, 256, (batch, 3, *model.preprocess.input_size), dtype=torch.uint8, device=runtime.device).contiguous(memory_format=torch.channels_last)

    def run(module) -> None:
        with inference(runtime):
            module(x)

    run(net)
    RESULTS["model_eager"] = batch / timed(lambda: run(net), runtime.device, repeat)
    print(f"eager:          {RESULTS['model_eager']:9.0f} img/s  (batch {batch}, {runtime.describe()})")
    if not compile_:
        print("torch.compile:  skipped (--no-compile, or CPU in --tiny mode)")
        return
    compiled = torch.compile(net)
    started = time.perf_counter()
    run(compiled)
    sync(runtime.device)
    print(f"                (compile + first batch: {time.perf_counter() - started:.1f} s)")
    RESULTS["model_compiled"] = batch / timed(lambda: run(compiled), runtime.device, repeat)
    print(f"torch.compile:  {RESULTS['model_compiled']:9.0f} img/s")


@section("2a. end to end: extract_features as shipped (Pillow in threads) -> cache")
def e2e_shipped(model, runtime, files, batch: int) -> None:
    from transferlab.features import FeatureCache, cache_key, extract_features

    with tempfile.TemporaryDirectory() as root:
        cache = FeatureCache(root, cache_key(model, runtime))
        ex = extract_features(model, files, cache=cache, runtime=runtime, batch_size=batch)
    RESULTS["e2e_threads"] = len(files) / ex.seconds
    print(f"{RESULTS['e2e_threads']:9.0f} img/s  ({len(files)} files, {ex.seconds:.1f} s, {len(ex.failed)} failed, {os.cpu_count()} CPUs)")


@section("2b. end to end: DataLoader workers around the same decoding -> cache")
def e2e_dataloader(model, runtime, files, batch: int, workers: int) -> None:
    from torch.utils.data import DataLoader, Dataset

    from transferlab.features import FeatureCache, cache_key
    from transferlab.features.extract import load_image
    from transferlab.features.runtime import inference

    class Files(Dataset):
        def __len__(self) -> int:
            return len(files)

        def __getitem__(self, i: int) -> torch.Tensor:
            return load_image(files[i], model.preprocess)

    net = model.feature_extractor().eval().to(runtime.device, memory_format=torch.channels_last)
    loader = DataLoader(Files(), batch_size=batch, num_workers=workers, pin_memory=runtime.device.type == "cuda", persistent_workers=False, prefetch_factor=4 if workers else None)
    with tempfile.TemporaryDirectory() as root:
        cache = FeatureCache(root, cache_key(model, runtime))
        started = time.perf_counter()
        for i, x in enumerate(loader):
            with inference(runtime):
                feats = net(x.to(runtime.device, non_blocking=True).contiguous(memory_format=torch.channels_last)).float().cpu()
            cache.put([f"h{i}-{j}" for j in range(len(feats))], feats)
        took = time.perf_counter() - started
    RESULTS["e2e_dataloader"] = len(files) / took
    print(f"{RESULTS['e2e_dataloader']:9.0f} img/s  ({workers} workers, {took:.1f} s)")


@section("2c. end to end: the device pipeline, extract_features(decoder='gpu') -> cache")
def e2e_device(model, runtime, files, batch: int, tiny: bool) -> None:
    """Batched nvJPEG decoding, Pillow-exact resize + crop on the GPU, reader threads, a side stream (features.device_input)."""
    import torch.nn.functional as F

    from transferlab.features import FeatureCache, cache_key, extract_features, features_of_images
    from transferlab.features.device_input import eval_batches

    if runtime.device.type != "cuda":
        if not tiny:
            print("skipped: needs CUDA (nvjpeg)")
            return
        print("(no CUDA: the same pipeline on the CPU, to check this section's code only)")
        started = time.perf_counter()
        with eval_batches(files, model.preprocess, batch, 2, 2 * batch, runtime.device) as batches:
            feats = torch.cat([features_of_images(model, x, runtime) for _, x, _ in batches if x is not None])
        took, first = time.perf_counter() - started, feats
    else:
        with tempfile.TemporaryDirectory() as root:
            ex = extract_features(model, files, cache=FeatureCache(root, cache_key(model, runtime)), runtime=runtime, batch_size=batch, decoder="gpu")
        took, first = ex.seconds, ex.features
    RESULTS["e2e_device"] = len(files) / took
    n = min(64, len(first))
    ref = extract_features(model, files[:n], runtime=runtime, batch_size=batch, decoder="cpu").features
    cos = F.cosine_similarity(first[:n], ref)
    print(f"{RESULTS['e2e_device']:9.0f} img/s  ({took:.1f} s, batch {batch}); features vs the Pillow path ({runtime.precision}): "
          f"mean cosine {cos.mean():.5f}, min {cos.min():.5f} on {n} images")


@section("3. naive baseline: torchvision ImageFolder + DataLoader, fp32 NCHW")
def naive(model, runtime, files, batch: int, workers: int) -> None:
    from torchvision import datasets, transforms

    root = Path(tempfile.mkdtemp(prefix="gpu-bench-folder-"))
    (root / "all").mkdir()
    for p in files:
        (root / "all" / p.name).symlink_to(p.resolve())
    pre = model.preprocess
    tf = transforms.Compose([transforms.Resize(pre.resize_size[0], interpolation=transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(pre.input_size),
                             transforms.ToTensor(), transforms.Normalize(pre.mean, pre.std)])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(root), tf), batch_size=batch, num_workers=workers)
    net = model.net.eval().to(runtime.device)
    started = time.perf_counter()
    with torch.no_grad():
        for x, _ in loader:
            net.forward_head(net.forward_features(x.to(runtime.device)), pre_logits=True).cpu()
    took = time.perf_counter() - started
    RESULTS["naive"] = len(files) / took
    print(f"{RESULTS['naive']:9.0f} img/s  ({workers} workers, {took:.1f} s)")


@section("4. fine-tuning (whole network, bf16 autocast, channels_last)")
def finetune(model, runtime, batch: int, repeat: int) -> None:
    import copy

    import torch.nn.functional as F

    from transferlab.train.finetune import FinetuneConfig, make_optimizer

    net = copy.deepcopy(model).to(runtime.device, memory_format=torch.channels_last).train()
    optimizer = make_optimizer(net.net, FinetuneConfig(), 1e-4)
    x = torch.randint(0, 256, (batch, 3, *model.preprocess.input_size), dtype=torch.uint8, device=runtime.device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(model.classes), (batch,), device=runtime.device)

    def step() -> None:
        with runtime.autocast():
            loss = F.cross_entropy(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    RESULTS["finetune"] = batch / timed(step, runtime.device, repeat)
    print(f"{RESULTS['finetune']:9.0f} img/s  (batch {batch}, {runtime.describe()})")


@section("4b. fine-tuning epoch from JPEG files: device-fed (decode + per-image crop/flip on the GPU) vs CPU-fed (DataLoader workers)")
def finetune_epoch(model, runtime, files, batch: int, workers: int) -> None:
    import copy

    import torch.nn.functional as F

    from transferlab.data.augment import train_transform
    from transferlab.train.device_loader import DeviceLoader, augment_view
    from transferlab.train.finetune import FinetuneConfig, make_optimizer
    from transferlab.train.loader import ImageFiles

    pre = model.preprocess
    net = copy.deepcopy(model).to(runtime.device, memory_format=torch.channels_last).train()
    optimizer = make_optimizer(net.net, FinetuneConfig(), 1e-4)
    items = [(p, i % len(model.classes)) for i, p in enumerate(files)]
    batches = [list(range(i, min(i + batch, len(items)))) for i in range(0, len(items), batch)]
    transform = train_transform(pre, "light")

    def epoch(loader) -> float:
        sync(runtime.device)
        started = time.perf_counter()
        for x, y in loader:
            x, y = x.to(runtime.device, non_blocking=True).contiguous(memory_format=torch.channels_last), y.to(runtime.device, non_blocking=True)
            with runtime.autocast():
                loss = F.cross_entropy(net(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(runtime.device)
        return len(items) / (time.perf_counter() - started)

    device = DeviceLoader(items, batches, augment_view(transform, 0), runtime.device, pre.draft_size())
    RESULTS["finetune_epoch_device"] = epoch(device)
    print(f"device-fed: {RESULTS['finetune_epoch_device']:9.0f} img/s  ({len(items)} files, batch {batch}, {runtime.describe()})")
    cpu = torch.utils.data.DataLoader(ImageFiles(items, transform, pre.draft_size()), batch_size=batch, num_workers=workers, pin_memory=runtime.device.type == "cuda")
    RESULTS["finetune_epoch_cpu_fed"] = epoch(cpu)
    print(f"CPU-fed:    {RESULTS['finetune_epoch_cpu_fed']:9.0f} img/s  ({workers} workers)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="Seconds-long check on any machine: few images, small batches.")
    parser.add_argument("--data", type=Path, default=None, help="A folder of JPEGs [default: synthetic ones].")
    parser.add_argument("--images", type=int, default=None, help="Images for the end-to-end sections [default: 4096, --tiny 32].")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()

    from transferlab.features.runtime import pick_runtime

    runtime = pick_runtime()
    gpu = runtime.device.type == "cuda"
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name() if gpu else 'no CUDA device: CPU'} ({runtime.describe()}), {os.cpu_count()} CPUs")
    if not gpu and not args.tiny:
        print("no GPU here: these are CPU figures, not the GPU path (use --tiny for a quick check)")
    batch, repeat = (8, 2) if args.tiny else (256, 10)
    n = args.images or (32 if args.tiny else 4096)
    workers = min(8, os.cpu_count() or 1) if not args.tiny else 2
    model, label = load_model()
    print(f"model: {label}, input {model.preprocess.input_size}")
    files = photos(args.data, n, (500, 375))
    print(f"photos: {len(files)} from {files[0].parent}")
    model_only(model, runtime, batch, repeat, compile_=not args.no_compile and (gpu or not args.tiny))
    e2e_shipped(model, runtime, files, batch if gpu else 16)
    e2e_dataloader(model, runtime, files, batch, workers)
    e2e_device(model, runtime, files, batch, args.tiny)
    naive(model, runtime, files, batch if gpu else 16, workers)
    finetune(model, runtime, 128 if gpu else batch, repeat)
    finetune_epoch(model, runtime, files, 128 if gpu else batch, workers)
    print("\n== summary (img/s)")
    for name, value in RESULTS.items():
        print(f"{name:<24} {value:9.0f}")
    cpu_note = "" if gpu else "  [CPU: not the goal measured]"
    if "e2e_device" in RESULTS and "model_eager" in RESULTS:
        print(f"goal: device pipeline end-to-end / model-only eager = {RESULTS['e2e_device'] / RESULTS['model_eager']:.2f} (want >= 0.5 on an H100-class GPU){cpu_note}")
    if "finetune_epoch_device" in RESULTS and "finetune" in RESULTS:
        print(f"goal: device-fed fine-tuning epoch / bare step rate = {RESULTS['finetune_epoch_device'] / RESULTS['finetune']:.2f} (want >= 0.5){cpu_note}")


if __name__ == "__main__":
    main()
