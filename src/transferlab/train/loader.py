"""Batches of decoded, augmented training images, prepared in DataLoader workers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from ..data import open_rgb
from ..features.runtime import cpu_count


class ImageFiles(torch.utils.data.Dataset):
    """(path, label) pairs -> (uint8 image tensor, label); files were checked when features were cached."""

    def __init__(self, items: Sequence[tuple[Path, int]], transform: Callable[[Image.Image], torch.Tensor], draft: tuple[int, int] | None = None) -> None:
        self.items = list(items)
        self.transform = transform
        self.draft = draft

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[i]
        return self.transform(open_rgb(path, draft=self.draft)), label


def make_loader(dataset: ImageFiles, batch_size: int, shuffle: bool, seed: int, epoch: int = 0, world_size: int = 1, rank: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader decoding in one worker per core; shuffling depends only on (seed, epoch).

    With ``world_size`` > 1 (DDP), each rank gets its own shard of every epoch's shuffled order.
    """
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    workers = min(cpu_count(), max(1, len(dataset) // batch_size))
    sampler = None
    if world_size > 1:
        sampler = torch.utils.data.DistributedSampler(dataset, world_size, rank, shuffle=shuffle, seed=seed, drop_last=shuffle)
        sampler.set_epoch(epoch)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        drop_last=shuffle and len(dataset) > batch_size * world_size,
        num_workers=workers,
        generator=generator,
        worker_init_fn=_seed_worker,
        persistent_workers=False,
    )


def _seed_worker(worker_id: int) -> None:
    import random

    import numpy as np

    seed = torch.initial_seed() % 2**32  # DataLoader derives it from the generator: same run, same augmentations
    random.seed(seed)
    np.random.seed(seed)
