"""Adversarial attacks in [0, 1] pixel space: a base class with the shared concerns, one file per method,
image-difference metrics, and robustness over a dataset."""

from .base import AttackResult, Attack, margins, parse_eps, parse_eps_list
from .config import METHODS, AttackConfig
from .fgsm import FGSM
from .metrics import l2, linf, psnr, ssim
from .pgd import BIM, PGD

__all__ = [
    "BIM",
    "FGSM",
    "METHODS",
    "PGD",
    "Attack",
    "AttackConfig",
    "AttackResult",
    "l2",
    "linf",
    "margins",
    "parse_eps",
    "parse_eps_list",
    "psnr",
    "ssim",
]
