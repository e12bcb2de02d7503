"""The attack recipe as one frozen record (what CLI flags map onto, and what reports save)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from ..errors import ConfigError
from .base import NORMS, PRECISIONS, Attack
from .fgsm import FGSM
from .pgd import BIM, PGD

METHODS: dict[str, type[Attack]] = {"fgsm": FGSM, "bim": BIM, "pgd": PGD}


@dataclass(frozen=True)
class AttackConfig:
    """How to attack; every field has a working default (targeted PGD L∞ 4/255 in ≤ 20 steps)."""

    method: str = "pgd"  # fgsm | bim | pgd
    norm: str = "Linf"  # Linf | L2
    eps: float = 4 / 255  # budget in [0, 1] pixel units
    steps: int = 20  # most gradient steps (fgsm: always 1)
    alpha: float | None = None  # step size; None: eps / 4
    random_start: bool = True  # pgd only (bim never, fgsm never)
    confidence: float = 0.0  # stop once the attack wins by this logit margin
    precision: str = "auto"  # auto | bf16 | fp32 (for the gradient; the check is always fp32)
    seed: int | None = 0  # random start

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"expected method in {tuple(METHODS)}, got {self.method!r}")
        if self.norm not in NORMS:
            raise ConfigError(f"expected norm in {NORMS}, got {self.norm!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"expected precision in {PRECISIONS}, got {self.precision!r}")
        if self.steps < 1:
            raise ConfigError(f"expected steps >= 1, got {self.steps}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def build(self, model: nn.Module, *, targeted: bool, eps: float | None = None) -> Attack:
        """The attack this record describes, on ``model`` (``eps`` overrides the record's budget)."""
        common = dict(targeted=targeted, confidence=self.confidence, precision=self.precision)
        budget = self.eps if eps is None else eps
        if self.method == "fgsm":
            return FGSM(model, budget, norm=self.norm, **common)
        if self.method == "bim":
            return BIM(model, budget, alpha=self.alpha, steps=self.steps, norm=self.norm, seed=self.seed, **common)
        return PGD(model, budget, alpha=self.alpha, steps=self.steps, norm=self.norm, random_start=self.random_start, seed=self.seed, **common)
