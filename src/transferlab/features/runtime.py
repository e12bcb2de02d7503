"""Where and how fast inference runs: device, precision, memory format and graph freezing.

On a CPU with native bf16 (AVX-512 BF16, AMX), channels_last + bf16 autocast + a frozen TorchScript
graph, run as one single-threaded stream per core, makes EfficientNet-Lite0 about 10x faster than plain
fp32 NCHW (BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..models.state import PRECISIONS, bf16_available, warn_if_emulated

log = logging.getLogger(__name__)


def cpu_has_bf16() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (otherwise bf16 is emulated and slow)."""
    return bf16_available(torch.device("cpu"))


def cpu_count() -> int:
    """Cores this process may use (respects affinity masks and cgroup-pinned CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "bf16" | "fp16" | "fp32"

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def describe(self) -> str:
        return f"{self.device.type} {self.precision}"


def pick_runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    """Resolve "auto": CUDA when present, bf16 where the hardware has it, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ConfigError(f"expected precision in {PRECISIONS}, got {precision!r}")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    if precision == "auto":
        if dev.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "bf16" if cpu_has_bf16() else "fp32"
    else:
        warn_if_emulated(precision, dev)
    return Runtime(dev, precision)


FREEZE_MIN_IMAGES = 128  # tracing costs about 1 s: below this many images eager mode finishes sooner


def optimize_for_inference(
    module: nn.Module, runtime: Runtime, example: torch.Tensor, n_images: int = FREEZE_MIN_IMAGES
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return a fast callable computing ``module(x)`` for ``n_images`` images in batches like ``example``.

    On CPU the module is traced and frozen (oneDNN fuses conv + bn + activation and pre-packs weights);
    the frozen graph is checked against eager on random images at another batch size, and dropped if
    it disagrees or tracing fails.
    """
    module = module.eval().to(runtime.device, memory_format=torch.channels_last)

    def eager(x: torch.Tensor) -> torch.Tensor:
        return module(x)

    if runtime.device.type != "cpu" or n_images < FREEZE_MIN_IMAGES:
        return eager
    example = example.to(runtime.device).contiguous(memory_format=torch.channels_last)
    noise = torch.rand(3, *example.shape[1:], generator=torch.Generator().manual_seed(0))  # same check every time
    check = (noise * 255).to(example.dtype).contiguous(memory_format=torch.channels_last)
    try:
        with warnings.catch_warnings(), torch.inference_mode(), runtime.autocast():
            warnings.simplefilter("ignore")  # torch.jit is deprecated for torch.compile, which compiles for ~25 s here
            frozen = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))  # checked below, once
            got, want = frozen(check).float(), module(check).float()
    except Exception as err:  # tracing fails on data-dependent control flow; eager always works
        log.info("using eager mode (tracing failed: %s)", err)
        return eager
    # bf16 fusions move single values by a few percent; what must hold is the direction of each vector
    if torch.nn.functional.cosine_similarity(got.flatten(1), want.flatten(1)).min() < 0.99:
        log.info("using eager mode (frozen graph disagreed with eager)")
        return eager
    return frozen


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Run the block with torch's intra-op threads set to ``n`` (0: leave them), restored on exit: the
    thread count is process-wide, so a library call or a command run in-process must give it back."""
    if n <= 0:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def single_threaded_ops(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """Limit torch's intra-op threads to 1 (restored on exit), for running one stream per core."""
    return intra_op_threads(1 if enabled else 0)


@contextlib.contextmanager
def inference(runtime: Runtime) -> Iterator[None]:
    with torch.inference_mode(), runtime.autocast():
        yield
