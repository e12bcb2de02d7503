"""Depthwise convolutions that run forward in bf16 and backward in fp32 while training under CPU autocast.

oneDNN's bf16 backward kernels for depthwise convolutions are 2-40x slower than its fp32 ones (the
weight gradient of a 5x5 layer with 240 channels: 57 ms against 19 ms; the input gradient of a strided
5x5 layer with 672: 46 ms against 1 ms), and for EfficientNet-Lite0 they were most of a training step.
With the backward pass of these layers in fp32, a step of the whole network goes from 30 to 43 images/s
on 2 Zen 4 cores (``benchmarks/train_step.py``). Other devices, precisions and evaluation are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from timm.layers import Conv2dSame, pad_same
from torch import nn


class _Conv(torch.autograd.Function):
    """conv2d in bf16 whose backward runs in fp32 (oneDNN's bf16 depthwise kernels are slow there)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):  # type: ignore[override]
        w16 = weight.to(torch.bfloat16)
        ctx.save_for_backward(x, w16)
        ctx.conv = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        return F.conv2d(x, w16, None if bias is None else bias.to(torch.bfloat16), stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, w16 = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        mask = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], False)
        g = grad_out.float()
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(g, x.float(), w16.float(), None, stride, padding, dilation, False, [0], groups, mask)
        grad_b = g.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return None if grad_x is None else grad_x.to(x.dtype), grad_w, grad_b, None, None, None, None


def _fast_path(module: nn.Conv2d, x: torch.Tensor) -> bool:
    return module.training and module.weight.requires_grad and x.device.type == "cpu" and torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


class _Depthwise(nn.Conv2d):
    """A plain ``nn.Conv2d`` (same parameters, same state dict) that trains through ``_Conv`` under CPU
    bf16 autocast; anything else goes through ``nn.Conv2d.forward``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _fast_path(self, x):
            return super().forward(x)
        with torch.autocast("cpu", enabled=False):
            return _Conv.apply(x.to(torch.bfloat16), self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _DepthwiseSame(Conv2dSame):
    """The same for timm's TensorFlow-style "same"-padded convolution (EfficientNet-Lite's strided layers)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _fast_path(self, x):
            return super().forward(x)
        x = pad_same(x, self.weight.shape[-2:], self.stride, self.dilation)
        with torch.autocast("cpu", enabled=False):
            return _Conv.apply(x.to(torch.bfloat16), self.weight, self.bias, self.stride, (0, 0), self.dilation, self.groups)


_FAST = {nn.Conv2d: _Depthwise, Conv2dSame: _DepthwiseSame}


def _depthwise(module: nn.Module) -> bool:
    return (type(module) in _FAST and module.groups > 1 and module.groups == module.in_channels
            and module.padding_mode == "zeros" and not isinstance(module.padding, str))  # "same"/"valid" strings: left alone


@contextmanager
def fp32_depthwise_backward(net: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Within the block, ``net``'s depthwise convolutions run their backward pass in fp32 (under CPU bf16 autocast).

    Yields the number of layers changed; they are their original class again afterwards, so what is
    saved or exported never depends on this.
    """
    changed = [(m, type(m)) for m in net.modules() if _depthwise(m)] if enabled else []
    for module, kind in changed:
        module.__class__ = _FAST[kind]
    try:
        yield len(changed)
    finally:
        for module, kind in changed:
            module.__class__ = kind
