"""Dog -> cat: targeted PGD on every american_bulldog photo of the Oxford mini test split.

Bundled efficientnet_lite0 (ImageNet head), target "tabby cat", PGD L∞ ε = 4/255, at most 20 steps.
Success is measured on the saved PNGs, re-read from disk and classified in fp32.

    PYTHONPATH=src python benchmarks/attack.py [--data DIR] [--batch 8] [--threads 1] [--precision auto]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import transferlab as tl
from transferlab.attacks import psnr, ssim
from transferlab.attacks.report import encode_png

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "oxford-iiit-pet-mini"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=Path("bench-attack"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="1: fastest measured on the busy 2-core CPU (2 threads wait on each other)")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--random-start", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    names = [line.split()[0] for line in (args.data / "annotations" / "test.txt").read_text().splitlines() if line.startswith("american_bulldog")]
    names = names[: args.limit]
    run = tl.open_model("efficientnet_lite0")
    target = run.class_index("tabby cat")
    x = torch.cat([run.load_image(args.data / "images" / f"{n}.jpg") for n in names])
    config = tl.AttackConfig(method="pgd", norm="Linf", eps=4 / 255, steps=20, random_start=args.random_start, precision=args.precision)
    attack = config.build(run.model, targeted=True)
    attack(x[:2], target)  # warm-up: oneDNN kernels for these shapes

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    steps = []
    for i in range(0, len(x), args.batch):
        result = attack(x[i : i + args.batch], target)
        steps += result.steps.tolist()
        for name, image in zip(names[i : i + args.batch], result.images):
            (args.out / f"{name}.png").write_bytes(encode_png(image))
    seconds = time.perf_counter() - started

    saved = torch.stack([torch.from_numpy(np.asarray(Image.open(args.out / f"{n}.png").convert("RGB")).copy()).permute(2, 0, 1).float() / 255 for n in names])
    model = run.model.eval()
    with torch.no_grad():
        pred = torch.cat([model(saved[i : i + 16]).argmax(1) for i in range(0, len(saved), 16)])
    linf_levels = ((saved - x) * 255).round().abs().flatten(1).amax(1)
    print(f"images {len(names)}  threads {args.threads}  batch {args.batch}  precision {args.precision}  random start {args.random_start}")
    print(f"targeted success on saved PNGs: {(pred == target).float().mean():.3f}")
    print(f"mean PSNR {psnr(saved, x).mean():.2f} dB  (min {psnr(saved, x).min():.2f})  mean SSIM {ssim(saved, x).mean():.4f}")
    print(f"max L∞ {int(linf_levels.max())}/255  steps mean {np.mean(steps):.2f} median {np.median(steps):.0f} max {max(steps)}")
    print(f"time {seconds:.1f} s = {seconds / len(names):.3f} s per image (attack + PNG write)")


if __name__ == "__main__":
    main()
