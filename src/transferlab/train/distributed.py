"""Data-parallel fine-tuning under ``torchrun`` (PyTorch DDP: gloo on CPU, NCCL on GPU).

Nothing changes for a single process: every helper is a no-op when ``WORLD_SIZE`` is unset or 1.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """This process's place among the torchrun workers, joining the process group on first use."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or not dist.is_available():
        return World()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_sums(values: Sequence[float], device: torch.device) -> list[float]:
    """Element-wise sums over all processes (identity in a single process)."""
    if not world().distributed:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_gather_lists(items: list) -> list:
    """Every process's ``items`` concatenated in rank order (``items`` itself in a single process)."""
    if not world().distributed:
        return list(items)
    gathered: list[list] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(gathered, items)
    return [x for part in gathered for x in part]


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (filling the feature cache, say); the others then run it too."""
    w = world()
    if w.distributed and not w.is_main:
        dist.barrier()
    yield
    if w.distributed and w.is_main:
        dist.barrier()
