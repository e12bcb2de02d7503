"""FGSM: one step of size ε along the gradient's sign (L∞) or direction (L2).

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Attack
from .metrics import per_image_norm


class FGSM(Attack):
    """Fast gradient sign method: ``x0 + ε·sign(∇loss)`` (L2: ``x0 + ε·∇/‖∇‖``), clamped to [0, 1].

    Args:
        model: pixels in [0, 1] -> logits (normalisation inside).
        eps: budget in [0, 1] pixel units (default 4/255).
        norm: "Linf" (the classic FGSM) or "L2" (the fast gradient method).
        targeted, confidence, quantize, precision: see :class:`Attack`.

    Shape:
        images (B, 3, H, W) in [0, 1], labels (B,) -> ``AttackResult`` with images (B, 3, H, W) in [0, 1].
    """

    name = "fgsm"

    def __init__(self, model: nn.Module, eps: float = 4 / 255, norm: str = "Linf", **kwargs) -> None:
        super().__init__(model, eps, steps=1, norm=norm, **kwargs)

    def step(self, x: torch.Tensor, x0: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "Linf":
            return self.project(x0 + self.eps * grad.sign(), x0)
        unit = grad / per_image_norm(grad).clamp_min(1e-12).view(-1, 1, 1, 1)
        return self.project(x0 + self.eps * unit, x0)
