"""PGD and BIM: repeated gradient steps, each projected back onto the ε-ball and [0, 1].

Kurakin, Goodfellow & Bengio, "Adversarial examples in the physical world", 2017 (BIM: no random start);
Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018 (PGD: random start).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .base import Attack
from .metrics import per_image_norm


class PGD(Attack):
    """Projected gradient descent under an L∞ or L2 budget.

    L∞ steps are ``α·sign(∇)``; L2 steps are ``α·∇/‖∇‖``. After each step the image is projected onto
    the ε-ball around the original and clamped to [0, 1]. Steps stop early per image (``confidence``).

    Args:
        model: pixels in [0, 1] -> logits (normalisation inside).
        eps: budget in [0, 1] pixel units (default 4/255).
        alpha: step size (default ε/4: four steps cross the ball; 1/255 for ε = 4/255, so L∞ iterates
            stay on the 8-bit grid).
        steps: most steps per image (default 20).
        norm: "Linf" or "L2".
        random_start: start from a uniform point of the L∞ ball (L2: of the L2 ball) instead of the image.
        seed: seed of the random start, for reproducible results (None: torch's global generator).
        targeted, confidence, quantize, precision: see :class:`Attack`.

    Shape:
        images (B, 3, H, W) in [0, 1], labels (B,) -> ``AttackResult`` with images (B, 3, H, W) in [0, 1].
    """

    name = "pgd"

    def __init__(
        self,
        model: nn.Module,
        eps: float = 4 / 255,
        alpha: float | None = None,
        steps: int = 20,
        norm: str = "Linf",
        random_start: bool = True,
        seed: int | None = 0,
        **kwargs,
    ) -> None:
        super().__init__(model, eps, steps=steps, norm=norm, **kwargs)
        self.alpha = self.eps / 4 if alpha is None else float(alpha)
        if not self.alpha > 0 and self.eps > 0:
            raise ConfigError(f"expected a step size alpha > 0, got {alpha}")
        self.random_start = random_start
        self.seed = seed

    def start(self, x0: torch.Tensor) -> torch.Tensor:
        if not self.random_start or self.eps == 0:
            return x0.clone()
        gen = None
        if self.seed is not None:
            gen = torch.Generator(device=x0.device).manual_seed(self.seed)
        noise = torch.rand(x0.shape, generator=gen, device=x0.device) * 2 - 1  # U(-1, 1)
        if self.norm == "L2":  # a uniform direction at a radius with the ball's volume distribution
            direction = torch.randn(x0.shape, generator=gen, device=x0.device)
            direction /= per_image_norm(direction).view(-1, 1, 1, 1)
            radius = torch.rand(len(x0), generator=gen, device=x0.device) ** (1 / x0[0].numel())
            noise = direction * radius.view(-1, 1, 1, 1)
        return self.project(x0 + self.eps * noise, x0)

    def step(self, x: torch.Tensor, x0: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "Linf":
            return self.project(x + self.alpha * grad.sign(), x0)
        unit = grad / per_image_norm(grad).clamp_min(1e-12).view(-1, 1, 1, 1)
        return self.project(x + self.alpha * unit, x0)


class BIM(PGD):
    """Basic iterative method: PGD started from the image itself (no random start). See :class:`PGD`."""

    name = "bim"

    def __init__(self, model: nn.Module, eps: float = 4 / 255, alpha: float | None = None, steps: int = 20, norm: str = "Linf", **kwargs) -> None:
        super().__init__(model, eps, alpha=alpha, steps=steps, norm=norm, random_start=False, **kwargs)
