"""Feature-extraction speed per precision on this CPU, side by side in one run, printed as a table.

    .venv/bin/python benchmarks/precision.py [--rounds 2]

Each precision runs the extraction's own fastest mode (extract.py's (a): channels_last, frozen graph, one
stream per core) on random uint8 batches, alternating precisions each round so that load on a shared
machine hits them alike. It shows why `--precision auto` picks bf16 only where the CPU has native kernels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract import model_only  # noqa: E402

from transferlab.features import cpu_has_bf16, pick_runtime  # noqa: E402
from transferlab.models import create_backbone  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batches", type=int, default=8, help="batches of 16 timed per precision and round")
    args = parser.parse_args()
    model = create_backbone(args.backbone).model
    precisions = args.precisions.split(",")
    auto = pick_runtime(device="cpu").precision
    print(f"{args.backbone}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {cpu_has_bf16()}, auto picks {auto}")
    speeds: dict[str, list[float]] = {p: [] for p in precisions}
    for _ in range(args.rounds):
        for p in precisions:
            speeds[p].append(model_only(model, pick_runtime(device="cpu", precision=p), batches=args.batches))
    base = max(speeds["fp32"]) if "fp32" in speeds else None
    for p, s in speeds.items():
        ratio = f"   = {max(s) / base:.2f} x fp32" if base else ""
        print(f"{p:5s} {' '.join(f'{v:7.1f}' for v in s)} img/s (rounds){ratio}")


if __name__ == "__main__":
    main()
