"""How different two images are: L∞, L2, PSNR and SSIM, per image of a batch.

Pure functions on (B, 3, H, W) tensors in [0, 1]. SSIM is the standard Gaussian-window SSIM of Wang et
al. (2004), 11×11 window, σ = 1.5, K = (0.01, 0.03), averaged over channels and the window-valid area;
``tests/attacks/test_metrics.py`` checks it against scikit-image's ``structural_similarity``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..errors import InputError


def linf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Largest absolute pixel change. Shape: (B, 3, H, W) x2 -> (B,)."""
    return (a - b).flatten(1).abs().amax(1)


def per_image_norm(t: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of each image over all its pixels and channels. Shape: (B, ...) -> (B,)."""
    return t.flatten(1).norm(dim=1)


def l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean norm of the change over all pixels and channels. Shape: (B, 3, H, W) x2 -> (B,)."""
    return per_image_norm(a - b)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (inf for identical images). Shape: (B, 3, H, W) x2 -> (B,)."""
    mse = (a.double() - b.double()).flatten(1).pow(2).mean(1)
    return (10 * torch.log10(data_range**2 / mse)).float()


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (1 for identical images). Shape: (B, C, H, W) x2 -> (B,).

    Raises:
        ValueError: images smaller than the window.
    """
    if a.shape != b.shape:
        raise InputError(f"expected images of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if min(a.shape[-2:]) < win_size:
        raise InputError(f"expected images of at least {win_size}x{win_size} pixels for SSIM, got {tuple(a.shape[-2:])}")
    x, y = a.double(), b.double()
    channels = x.shape[1]
    g = _gaussian_window(win_size, sigma, x.device)
    gh = g.view(1, 1, 1, -1).expand(channels, 1, 1, win_size)
    gv = g.view(1, 1, -1, 1).expand(channels, 1, win_size, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable, 'valid': only windows inside the image
        return F.conv2d(F.conv2d(t, gh, groups=channels), gv, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1).float()
