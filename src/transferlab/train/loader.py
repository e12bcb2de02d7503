"""Batches of decoded, augmented training images: prepared ahead in DataLoader workers, or between steps on small CPUs."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image

from ..data import open_rgb
from ..features.runtime import cpu_count


class ImageFiles(torch.utils.data.Dataset):
    """(path, label) pairs -> (uint8 image tensor, label); files were checked when features were cached.

    With ``seed`` set (``make_loader`` sets it per epoch), the random augmentation of image ``i`` depends
    only on (seed, i): not on the number of worker processes, nor on the training's own random draws.
    """

    def __init__(self, items: Sequence[tuple[Path, int]], transform: Callable[[Image.Image], torch.Tensor], draft: tuple[int, int] | None = None) -> None:
        self.items = list(items)
        self.transform = transform
        self.draft = draft
        self.seed: int | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.items[i]
        image = open_rgb(path, draft=self.draft)
        if self.seed is None:
            return self.transform(image), label
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + i)
            return self.transform(image), label


def loader_workers(device_type: str = "cpu") -> int:
    """DataLoader worker processes for training on ``device_type``, sized to the cores present.

    For a GPU, one per core. On a CPU the cores also do the training: on 2 cores a worker process
    that decodes ahead cost more than decoding between steps (29 against 42 images/s for
    EfficientNet-Lite0; its time slices stall the compute threads), so there are none; with more cores
    a quarter of them decode ahead.
    """
    cores = cpu_count()
    if device_type != "cpu":
        return cores
    return 0 if cores <= 2 else cores // 4


class EvenBatches(torch.utils.data.Sampler[list[int]]):
    """Batches of at most ``batch_size`` that use every index of ``sampler`` once, sized as evenly as
    possible (245 images in batches of 32: five of 31 and three of 30), so no image is dropped and no
    last batch is a lone image."""

    def __init__(self, sampler: torch.utils.data.Sampler[int], batch_size: int) -> None:
        self.sampler = sampler
        self.batch_size = batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        n_batches = len(self)
        base, extra = divmod(len(order), max(1, n_batches))
        start = 0
        for b in range(n_batches):
            size = base + (b < extra)
            yield order[start : start + size]
            start += size


def make_loader(dataset: ImageFiles, batch_size: int, shuffle: bool, seed: int, epoch: int = 0, world_size: int = 1, rank: int = 0, device_type: str = "cpu") -> torch.utils.data.DataLoader:
    """A DataLoader with ``loader_workers(device_type)`` workers; shuffling depends only on (seed, epoch).

    Training (``shuffle``) uses every image in every epoch, in evenly sized batches. With
    ``world_size`` > 1 (DDP), each rank gets its own shard of every epoch's shuffled order (the
    sampler repeats a few images so that all ranks take the same number of steps).
    """
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    dataset.seed = seed * 1000 + epoch if shuffle else None  # evaluation transforms draw nothing
    workers = min(loader_workers(device_type), max(1, len(dataset) // batch_size))
    if world_size > 1:
        sampler: torch.utils.data.Sampler[int] = torch.utils.data.DistributedSampler(dataset, world_size, rank, shuffle=shuffle, seed=seed, drop_last=False)
        sampler.set_epoch(epoch)
    elif shuffle:
        sampler = torch.utils.data.RandomSampler(dataset, generator=generator)
    else:
        sampler = torch.utils.data.SequentialSampler(dataset)
    batches = EvenBatches(sampler, batch_size) if shuffle else torch.utils.data.BatchSampler(sampler, batch_size, drop_last=False)
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        generator=generator,
        worker_init_fn=_seed_worker if workers else None,
        persistent_workers=False,
    )


def _seed_worker(worker_id: int) -> None:
    import random

    import numpy as np

    seed = torch.initial_seed() % 2**32  # DataLoader derives it from the generator: same run, same augmentations
    random.seed(seed)
    np.random.seed(seed)
