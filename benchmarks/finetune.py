"""Fine-tuning training speed on this machine: our loop vs a naive PyTorch loop, printed as a table.

    .venv/bin/python benchmarks/finetune.py [--data ../shared/data/oxford-iiit-pet-mini] [--epochs 2]

Same model (default backbone, bundled weights, head from a probe-less init), same batch size, same
images (the Oxford trainval split) cropped to the same training size (the default recipe's, 192 px for
224), same trainable stages. Ours: transferlab's ``train_one_epoch``
(bf16 autocast + channels_last where the CPU has bf16, decoding + augmentation in one DataLoader
worker per core, JPEG draft decoding). Naive: fp32, NCHW, a plain DataLoader (no workers) over
``PIL.Image.open`` + torchvision transforms, AdamW. The first epoch warms up; the last is reported.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

import transferlab as tl
from transferlab.data.augment import train_size, train_transform
from transferlab.features import pick_runtime
from transferlab.train import FinetuneConfig
from transferlab.train.finetune import frozen_modules, make_optimizer, train_one_epoch
from transferlab.train.loader import ImageFiles, make_loader

ROOT = Path(__file__).resolve().parents[1]


class NaiveFiles(torch.utils.data.Dataset):
    def __init__(self, items, size):
        self.items = items
        self.transform = v2.Compose([v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True), v2.RandomHorizontalFlip(), v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True)])

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        return self.transform(Image.open(path).convert("RGB")), label


def naive_epoch(model, items, config: FinetuneConfig) -> float:
    """Images/s of one epoch of the loop a tutorial would write."""
    size = train_size(model.preprocess.input_size, config.train_size_ratio)
    loader = torch.utils.data.DataLoader(NaiveFiles(items, size), batch_size=config.batch_size, shuffle=True, drop_last=True)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    model.train()
    seen, started = 0, time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(y)
    return seen / (time.perf_counter() - started)


def ours_epoch(model, items, config: FinetuneConfig, frozen, epoch: int) -> float:
    runtime = pick_runtime()
    model.to(memory_format=torch.channels_last)
    loader = make_loader(ImageFiles(items, train_transform(model.preprocess, config.augment, config.train_size_ratio), model.preprocess.draft_size()), config.batch_size, True, 0, epoch)
    optimizer = make_optimizer(model.net, config, config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return train_one_epoch(model, loader, optimizer, scheduler, config, runtime, frozen)["images_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--unfreeze", nargs="+", default=["3", "all"])
    parser.add_argument("--train-size-ratio", type=float, default=FinetuneConfig.train_size_ratio)
    args = parser.parse_args()
    ds = tl.load_dataset(args.data)
    items = [(s.path, s.label) for s in ds.split("train")]
    size = train_size(tl.create_backbone("efficientnet_lite0").model.preprocess.input_size, args.train_size_ratio)
    print(f"{len(items)} training images at {size[0]}x{size[1]}, {torch.get_num_threads()} threads, runtime {pick_runtime().describe()}")
    print(f"{'unfreeze':>8}  {'naive img/s':>11}  {'ours img/s':>10}  {'speed-up':>8}")
    for unfreeze in args.unfreeze:
        config = FinetuneConfig(unfreeze=unfreeze, train_size_ratio=args.train_size_ratio)
        rates = {}
        for name in ("naive", "ours"):
            model = tl.create_backbone("efficientnet_lite0").model
            model.net.reset_classifier(len(ds.classes))
            model.classes = ds.classes
            frozen = frozen_modules(model.net, unfreeze)
            for epoch in range(args.epochs):
                rate = naive_epoch(model, items, config) if name == "naive" else ours_epoch(model, items, config, frozen, epoch)
            rates[name] = rate
        print(f"{unfreeze:>8}  {rates['naive']:>11.1f}  {rates['ours']:>10.1f}  {rates['ours'] / rates['naive']:>7.1f}x", flush=True)


if __name__ == "__main__":
    main()
