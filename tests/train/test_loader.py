from pathlib import Path

import torch

from transferlab.data.augment import train_transform
from transferlab.models import Preprocess
from transferlab.train import loader


def _batches(folder: Path, epoch: int, workers: int, monkeypatch) -> list[torch.Tensor]:
    monkeypatch.setattr(loader, "loader_workers", lambda device_type="cpu": workers)
    items = [(p, 0) for p in sorted(folder.rglob("*.jpg"))]
    files = loader.ImageFiles(items, train_transform(Preprocess(input_size=(32, 32)), "strong"))
    torch.manual_seed(123 + workers)  # the training's own random state must not matter
    return [x for x, _ in loader.make_loader(files, 4, True, seed=0, epoch=epoch)]


def test_augmentations_depend_on_seed_and_epoch_not_on_worker_processes(photo_folder: Path, monkeypatch) -> None:
    inline, two_workers = _batches(photo_folder, 0, 0, monkeypatch), _batches(photo_folder, 0, 2, monkeypatch)
    assert len(inline) > 1 and all(torch.equal(a, b) for a, b in zip(inline, two_workers, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(inline, _batches(photo_folder, 1, 0, monkeypatch)))


def test_every_training_image_counts_in_every_epoch_in_even_batches() -> None:
    # regression: the last partial batch was dropped (under torchrun, on every rank: 192 of 224 images)
    files = loader.ImageFiles([(Path(f"{i}.jpg"), 0) for i in range(245)], transform=lambda image: image)
    batches = list(loader.EvenBatches(torch.utils.data.RandomSampler(files), 32))
    assert sorted(i for b in batches for i in b) == list(range(245)) and {len(b) for b in batches} == {30, 31}
    shards = [torch.utils.data.DistributedSampler(files, 2, rank, drop_last=False) for rank in (0, 1)]
    per_rank = [[i for b in loader.EvenBatches(s, 32) for i in b] for s in shards]
    assert set(per_rank[0]) | set(per_rank[1]) == set(range(245)) and len(per_rank[0]) == len(per_rank[1])
