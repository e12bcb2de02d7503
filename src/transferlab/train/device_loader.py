"""Fine-tuning batches decoded and augmented on the GPU (``features.device_input``), in the CPU loader's order.

The batches, their order and their sharding across processes are the CPU loader's (``loader.make_loader``'s
batch sampler: the same seed gives the same images in the same steps); only where the pixels are made moves.
The augmentation is the CPU recipe's (``data.augment.train_transform``), read from it, not restated: a random
resized crop with its scale, ratio, size and filter, then a horizontal flip with its probability, each drawn
per image (torchvision's transforms would draw one crop for a whole batch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torchvision.transforms import v2

from ..data.augment import train_transform
from ..data.decode import BadImageError
from ..errors import ConfigError
from ..features.device_geometry import eval_view, random_crop_boxes, random_flips, resize_boxes
from ..features.device_input import DeviceBatches, View, current_decoder, use_device_decoder
from ..features.runtime import Runtime, cpu_count
from ..models.preprocess import Preprocess
from .config import FinetuneConfig
from .distributed import World
from .loader import ImageFiles, make_loader

log = logging.getLogger(__name__)


class DeviceLoader:
    """(x, y) batches on the device: x (B, 3, H, W) uint8 from ``view``, y (B,) class indices.

    Raises ``BadImageError`` for a file that cannot be decoded, as the CPU loader does (files were checked
    when their features were cached).
    """

    def __init__(self, items: Sequence[tuple[Path, int]], batches: Sequence[Sequence[int]], view: View, device: torch.device, draft: tuple[int, int] | None) -> None:
        self.paths = [Path(p) for p, _ in items]
        self.labels = torch.tensor([int(y) for _, y in items], dtype=torch.int64)
        self.batches, self.view, self.device, self.draft = [list(b) for b in batches], view, device, draft

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        workers = cpu_count()
        with DeviceBatches(self.paths, self.batches, self.view, self.device, workers, 4 * max(map(len, self.batches), default=1), self.draft) as batches:
            for positions, x, bad in batches:
                if bad:
                    position, reason = next(iter(bad.items()))
                    raise BadImageError(reason, self.paths[position])
                yield x, self.labels[positions].to(self.device, non_blocking=True)  # type: ignore[misc]


def augment_view(transform: v2.Compose, seed: int) -> View | None:
    """The device version of ``transform`` (a ``train_transform``): random resized crop + flip, drawn per image from
    a generator seeded by (``seed``, batch index); None when the recipe has steps the device does not apply."""
    steps = list(transform.transforms)
    if len(steps) != 3 or not isinstance(steps[0], v2.RandomResizedCrop) or not isinstance(steps[1], v2.RandomHorizontalFlip):
        return None
    crop, flip = steps[0], steps[1]
    size = (int(crop.size[0]), int(crop.size[1]))

    def view(images: list[torch.Tensor], index: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
        sizes = torch.tensor([tuple(im.shape[-2:]) for im in images])
        boxes = random_crop_boxes(sizes, generator, tuple(crop.scale), tuple(crop.ratio))  # type: ignore[arg-type]
        return random_flips(resize_boxes(images, boxes, size, crop.interpolation.value), generator, flip.p)

    return view


def device_loaders(
    train: Sequence[tuple[Path, int]], val: Sequence[tuple[Path, int]], preprocess: Preprocess, config: FinetuneConfig, seed: int, world: World, runtime: Runtime
) -> tuple[Callable[[int], DeviceLoader], DeviceLoader] | None:
    """(epoch -> that epoch's training loader, the validation loader) decoding on ``runtime.device``, or None when
    images are decoded on the CPU (``device_input.use_device_decoder``; a CPU-only augmentation under ``auto``).

    Raises:
        ConfigError: ``gpu`` decoding asked for with an augmentation the device does not apply (``strong``).
    """
    if not use_device_decoder(runtime.device):
        return None
    transform = train_transform(preprocess, config.augment, config.train_size_ratio)
    eval_images: View = lambda images, _: eval_view(preprocess, images)  # noqa: E731
    if config.augment != "none" and augment_view(transform, 0) is None:  # type: ignore[arg-type]
        if current_decoder() == "gpu":
            raise ConfigError(f"expected --augment none or light with --decoder gpu, got {config.augment!r}: its steps run on the CPU only; use --decoder auto")
        log.info("decoding training images on the CPU: the %r augmentation runs there only", config.augment)
        return None
    draft = preprocess.draft_size()

    def train_loader(epoch: int) -> DeviceLoader:
        order = make_loader(ImageFiles(train, preprocess.to_uint8), config.batch_size, True, seed, epoch, world.size, world.rank, runtime.device.type)
        view = eval_images if config.augment == "none" else augment_view(transform, seed * 1000 + epoch)  # type: ignore[arg-type]
        return DeviceLoader(train, batch_order(order), view, runtime.device, draft)  # type: ignore[arg-type]

    shard = list(val)[world.rank :: world.size]
    order = make_loader(ImageFiles(shard, preprocess.to_uint8), config.batch_size, False, seed, device_type=runtime.device.type)
    return train_loader, DeviceLoader(shard, batch_order(order), eval_images, runtime.device, draft)  # type: ignore[arg-type]


def batch_order(loader: torch.utils.data.DataLoader) -> list[list[int]]:
    """The index batches a fresh ``loader`` yields, in its order, without decoding an image: iterating a DataLoader
    first draws its workers' base seed from its generator (torch's ``_BaseDataLoaderIter``), then reads the sampler."""
    if loader.generator is not None:
        torch.empty((), dtype=torch.int64).random_(generator=loader.generator)
    return [list(b) for b in loader.batch_sampler]  # type: ignore[union-attr]
