"""Leave the caller's model as it was: its mode, device, dtype and memory layout, whatever a call does."""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator

import torch
from torch import nn

log = logging.getLogger(__name__)


def _modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """Each module's own ``training`` flag: a caller may train a model whose BatchNorm layers stay in eval
    mode, which ``model.train(was_training)`` would undo by setting every submodule alike."""
    return [(m, m.training) for m in model.modules()]


def _restore_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    for m, training in modes:
        m.training = training


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block; after it, every submodule in its own mode (train or eval) again."""
    modes = _modes(model)
    model.eval()
    try:
        yield model
    finally:
        _restore_modes(modes)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` with ``requires_grad`` off for every parameter inside the block (gradients for the input
    only), each parameter's own flag again after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def inference_copy(model: nn.Module, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> nn.Module:
    """A copy of ``model`` in eval mode on ``device``, its floating-point tensors in ``dtype``, for a caller
    that keeps the converted model (an exporter, a server); ``model`` itself is untouched.

    Each tensor is converted as it is copied, so a GPU model never needs twice its memory on the GPU.
    """
    def converted(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(device=device, dtype=dtype if t.is_floating_point() else t.dtype, copy=True)

    memo: dict[int, object] = {id(p): nn.Parameter(converted(p), requires_grad=p.requires_grad) for p in model.parameters()}
    memo.update({id(b): converted(b) for b in model.buffers()})
    return copy.deepcopy(model, memo).eval()


PRECISIONS = ("auto", "bf16", "fp16", "fp32")  # auto: bf16 where the hardware has it, else fp32


def bf16_available(device: torch.device) -> bool:
    """Native bf16 kernels on ``device`` (oneDNN's on CPUs; emulated bf16 on older CPUs is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def warn_if_emulated(precision: str, device: torch.device) -> None:
    """Say once per process when ``precision`` (asked for, not ``auto``) has no native kernels on this CPU."""
    if device.type == "cpu" and precision in ("bf16", "fp16") and precision not in _warned and not bf16_available(device):
        _warned.add(precision)
        log.warning(
            "%s runs emulated on this CPU (no AVX-512 BF16 or AMX), more than 10x slower than fp32; "
            "precision 'auto' picks fp32 here; keep %s only if you need its numbers", precision, precision,
        )


_warned: set[str] = set()


def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s parameters (CPU for a model without any)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _layout(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous() else torch.contiguous_format


def _moved_back(t: torch.Tensor, device: torch.device, dtype: torch.dtype, layout: torch.memory_format) -> torch.Tensor | None:
    """``t`` on ``device`` in ``dtype`` and ``layout``, or None when it already is."""
    if t.device == device and t.dtype == dtype and (t.ndim != 4 or t.is_contiguous(memory_format=layout)):
        return None
    return t.to(device=device, dtype=dtype, memory_format=layout if t.ndim == 4 else torch.preserve_format)


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block a call may move ``model`` (device, dtype, channels_last) and switch its mode; after it,
    every parameter and buffer is back where it was, in its own layout and dtype, holding its current values,
    and so is the mode.

    Parameters are moved in place (``Module.to`` keeps the same Parameter objects), but buffers are replaced
    by new tensors, so they are found again by module and name (a GPU run left BatchNorm statistics there).
    """
    params = [(p, p.device, p.dtype, _layout(p)) for p in model.parameters()]
    buffers = [(m, name, b.device, b.dtype, _layout(b)) for m in model.modules() for name, b in m.named_buffers(recurse=False)]
    modes = _modes(model)
    try:
        yield model
    finally:
        _restore_modes(modes)
        for p, device, dtype, layout in params:
            moved = _moved_back(p.data, device, dtype, layout)
            if moved is not None:
                p.data = moved
        for m, name, device, dtype, layout in buffers:
            b = getattr(m, name, None)
            moved = _moved_back(b, device, dtype, layout) if isinstance(b, torch.Tensor) else None
            if moved is not None:
                setattr(m, name, moved)
