"""Dog -> cat: targeted PGD on every american_bulldog photo of the Oxford mini test split, judged by
`transferlab predict` on the saved files.

Bundled efficientnet_lite0 (ImageNet head), target "tabby cat", PGD L∞ ε = 4/255, at most 20 steps, each
photo attacked at its own resolution through ``tl.attack`` (crop and resize inside the network). The
saved PNGs are then classified by the `transferlab predict` command itself (a separate process, its
default precision), and PSNR is measured at each photo's own size. With ``--run RUN --target CLASS``, a trained
run is attacked instead, and the output also counts the photos its "none of these" check flags, before and after.

    .venv/bin/python benchmarks/attack.py [--data DIR] [--out bench-attack] [--threads 1] [--limit N] [--run RUN --target Bengal]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import transferlab as tl
from transferlab.attacks import psnr, ssim

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "oxford-iiit-pet-mini"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=Path("bench-attack"))
    ap.add_argument("--threads", type=int, default=1, help="1: fastest measured on the busy 2-core CPU (2 threads wait on each other)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--run", default="efficientnet_lite0", help="a run folder or a backbone (its ImageNet head)")
    ap.add_argument("--target", default="tabby cat")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    names = [line.split()[0] for line in (args.data / "annotations" / "test.txt").read_text().splitlines() if line.startswith("american_bulldog")]
    names = names[: args.limit]
    run = tl.open_model(args.run)
    config = tl.AttackConfig(method="pgd", norm="Linf", eps=4 / 255, steps=20)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    reports = []
    for name in names:
        reports.append(tl.attack(run, args.data / "images" / f"{name}.jpg", args.target, config=config))
        (args.out / f"{name}.png").write_bytes(_png(reports[-1]))
    seconds = time.perf_counter() - started

    judged = _predict(args.run, [args.out / f"{n}.png" for n in names])
    target = run.classes[run.class_index(args.target)]
    hits = [row["top"][0]["label"] == target for row in judged]
    psnrs = torch.cat([psnr(r.adversarial[None], r.original[None]) for r in reports])
    ssims = torch.cat([ssim(r.adversarial[None], r.original[None]) for r in reports])
    levels = [int(((r.adversarial - r.original) * 255).round().abs().max()) for r in reports]
    sizes = [tuple(r.original.shape[-2:]) for r in reports]
    attempts = [r.record["attempts"] for r in reports]
    print(f"images {len(names)} at their own size ({min(sizes)} to {max(sizes)} px, H x W)  threads {args.threads}")
    print(f"targeted success, `transferlab predict` on the saved PNGs: {np.mean(hits):.3f}")
    print(f"the attack's own verdict agreed on {np.mean([r.record['success_in_attack'] == h for r, h in zip(reports, hits)]):.3f}; attempts mean {np.mean(attempts):.2f} max {max(attempts)}")
    print(f"mean PSNR {psnrs.mean():.2f} dB (min {psnrs.min():.2f})  mean SSIM {ssims.mean():.4f}  max L∞ {max(levels)}/255")
    print(f"time {seconds:.1f} s = {seconds / len(names):.3f} s per image (attack, predict-path check, PNG write)")
    if run.confidence.rejects:
        originals = _predict(args.run, [args.data / "images" / f"{n}.jpg" for n in names])
        flagged = sum(not row["in_distribution"] for row in judged)
        print(f"'none of these' from predict: {flagged} of {len(names)} adversarial PNGs ({sum(h and not row['in_distribution'] for h, row in zip(hits, judged))} of them "
              f"fooled), {sum(not row['in_distribution'] for row in originals)} of the {len(names)} original photos")


def _predict(model: str, paths: list[Path]) -> list[dict]:
    """What the `transferlab predict` command answers for ``paths`` (a separate process, its defaults)."""
    cli = [sys.executable, "-m", "transferlab", "predict", model, *map(str, paths), "--json", "-k", "1"]
    return json.loads(subprocess.run(cli, capture_output=True, text=True, check=True).stdout)


def _png(report) -> bytes:  # noqa: ANN001
    from transferlab.models.images import png_bytes

    return png_bytes(report.adversarial)


if __name__ == "__main__":
    main()
