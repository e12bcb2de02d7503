"""One fine-tuning step of EfficientNet-Lite0 (whole backbone, batch 32, 192 px, no data loading) in the
precision/layout variants BENCHMARKS.md compares, median of 6 steps after 2 warm-up steps:

    .venv/bin/python benchmarks/train_step.py
"""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F

import transferlab as tl
from transferlab.train.depthwise import fp32_depthwise_backward
from transferlab.train.finetune import FinetuneConfig, set_train_mode, make_optimizer

VARIANTS = {  # name: (bf16 autocast, channels_last, depthwise backward in fp32, depthwise weights trained)
    "fp32, NCHW (the naive loop's arithmetic)": (False, False, False, True),
    "fp32, channels_last": (False, True, False, True),
    "bf16 autocast, channels_last": (True, True, False, True),
    "the same, depthwise backward in fp32 (the default)": (True, True, True, True),
    "for comparison: depthwise weights not trained": (True, True, False, False),
}


def images_per_s(bf16: bool, channels_last: bool, fp32_dw: bool, train_dw: bool, size: int = 192, batch: int = 32) -> float:
    torch.manual_seed(0)
    model = tl.create_backbone("efficientnet_lite0").model
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d) and m.groups > 1:
            m.weight.requires_grad_(train_dw)
    optimizer = make_optimizer(model.net, FinetuneConfig(), 1e-4)
    x = torch.randint(0, 255, (batch, 3, size, size), dtype=torch.uint8).contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,))

    def step() -> None:
        set_train_mode(model, [], "frozen")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with fp32_depthwise_backward(model.net) if fp32_dw else contextlib.nullcontext():
        for _ in range(2):
            step()
        times = []
        for _ in range(6):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
    return batch / sorted(times)[len(times) // 2]


def main() -> None:
    print(f"one step, batch 32, 192 px, {torch.get_num_threads()} threads")
    for name, flags in VARIANTS.items():
        print(f"{name:55s} {images_per_s(*flags):6.1f} images/s", flush=True)


if __name__ == "__main__":
    main()
