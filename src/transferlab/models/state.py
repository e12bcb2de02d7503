"""Leave the caller's model as it was: its mode, device, dtype and memory layout, whatever a call does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block, its own mode (train or eval) again after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


PRECISIONS = ("auto", "bf16", "fp16", "fp32")  # auto: bf16 where the hardware has it, else fp32


def bf16_available(device: torch.device) -> bool:
    """Native bf16 kernels on ``device`` (oneDNN's on CPUs; emulated bf16 on older CPUs is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block a call may move ``model`` (device, channels_last) and switch its mode; after it,
    every parameter and buffer is back where it was, in its own layout and dtype, and so is the mode."""
    tensors = [*model.parameters(), *model.buffers()]
    before = [(t, t.device, t.dtype, t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()) for t in tensors]
    was_training = model.training
    try:
        yield model
    finally:
        model.train(was_training)
        for t, device, dtype, channels_last in before:
            layout = torch.channels_last if channels_last else torch.contiguous_format
            if t.device != device or t.dtype != dtype or (t.ndim == 4 and not t.is_contiguous(memory_format=layout)):
                t.data = t.data.to(device=device, dtype=dtype, memory_format=layout if t.ndim == 4 else torch.preserve_format)
