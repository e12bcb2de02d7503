"""How the optimised image is represented (lucent's ``optvis/param``).

A parameterisation holds the tensors the optimiser changes and maps them to an RGB image in [0, 1]
through a sigmoid, so the image is always valid and no clamping fights the optimiser.

- ``pixel``: one free value per pixel and channel. Every frequency is equally easy to change, so plain
  gradient ascent finds high-frequency, noise-like patterns first.
- ``fft``: the image's 2-D Fourier spectrum, each frequency scaled by 1/f. Gradient steps then move
  low frequencies as easily as high ones (natural images have a 1/f spectrum), which gives smoother,
  more natural-looking images (Olah et al., "Feature Visualization", Distill 2017).

Both can work in a decorrelated colour space: three channels that are the principal components of
ImageNet colours, mixed back to RGB before the sigmoid; a step then changes brightness and colour
independently rather than each RGB channel on its own.
"""

from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError, InputError
from .config import PARAMS

# Square root of the ImageNet colour covariance (lucent / lucid), columns = principal directions.
_COLOR_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR_CORRELATION = _COLOR_SVD_SQRT / _COLOR_SVD_SQRT.norm(dim=0).max()
_FFT_MAGIC = 4.0  # lucid's scale making the fft image's pixel spread similar to the pixel param's


class ImageParam(nn.Module):
    """Base: ``forward()`` returns the current image; ``parameters()`` are what the optimiser changes.

    Shape:
        ``forward()`` returns (B, 3, H, W) float in [0, 1].
    """

    def __init__(self, shape: tuple[int, int, int, int], decorrelate: bool) -> None:
        super().__init__()
        _check_shape(shape)
        self.shape = shape
        self.decorrelate = decorrelate

    def raw(self) -> torch.Tensor:
        """The image before the colour mix and the sigmoid. Shape: (B, 3, H, W)."""
        raise NotImplementedError

    def set_raw(self, raw: torch.Tensor) -> None:
        """Set the parameters so that ``raw()`` returns ``raw``."""
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        x = self.raw()
        if self.decorrelate:
            x = torch.einsum("bchw,dc->bdhw", x, _COLOR_CORRELATION.to(x))
        return torch.sigmoid(x)

    @torch.no_grad()
    def start_from(self, image: torch.Tensor) -> "ImageParam":
        """Make ``forward()`` return ``image`` (a photo in [0, 1]) instead of noise; returns self.

        Shape:
            image (B, 3, H, W) with the param's shape, or (1, 3, H, W) to broadcast.
        """
        x = torch.logit(image.to(torch.float32).clamp(1e-3, 1 - 1e-3)).expand(self.shape)  # sigmoid^-1
        if self.decorrelate:
            x = torch.einsum("bdhw,cd->bchw", x, torch.linalg.inv(_COLOR_CORRELATION).to(x))
        self.set_raw(x)
        return self


class PixelParam(ImageParam):
    """One free parameter per pixel and channel."""

    def __init__(self, shape: tuple[int, int, int, int], sd: float = 0.01, decorrelate: bool = False, generator: torch.Generator | None = None) -> None:
        super().__init__(shape, decorrelate)
        self.pixels = nn.Parameter(torch.randn(shape, generator=generator) * sd)

    def raw(self) -> torch.Tensor:
        return self.pixels

    def set_raw(self, raw: torch.Tensor) -> None:
        self.pixels.copy_(raw)


def _rfft2_freqs(h: int, w: int) -> torch.Tensor:
    """|frequency| of each coefficient of ``torch.fft.rfft2`` on an (h, w) image. Shape: (h, w // 2 + 1)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


class FFTParam(ImageParam):
    """The image's real 2-D spectrum, each frequency f scaled by 1 / max(f, 1/size) ** decay_power."""

    def __init__(
        self, shape: tuple[int, int, int, int], sd: float = 0.01, decay_power: float = 1.0, decorrelate: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(shape, decorrelate)
        b, c, h, w = shape
        freqs = _rfft2_freqs(h, w)
        self.register_buffer("scale", 1.0 / freqs.clamp(min=1.0 / max(h, w)) ** decay_power, persistent=False)
        self.spectrum = nn.Parameter(torch.randn((b, c, *freqs.shape, 2), generator=generator) * sd)  # (B, C, h, w//2+1, re/im)

    def raw(self) -> torch.Tensor:
        h, w = self.shape[2:]
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        return torch.fft.irfft2(spectrum, s=(h, w), norm="ortho") / _FFT_MAGIC

    def set_raw(self, raw: torch.Tensor) -> None:
        spectrum = torch.fft.rfft2(raw * _FFT_MAGIC, norm="ortho") / self.scale
        self.spectrum.copy_(torch.view_as_real(spectrum))


def make_param(
    kind: str, shape: tuple[int, int, int, int], *, decorrelate: bool | None = None, seed: int = 0, sd: float = 0.01,
) -> ImageParam:
    """A parameterisation by name: ``pixel`` or ``fft`` (colour decorrelation on by default for fft only)."""
    if kind not in PARAMS:
        raise ConfigError(f"expected param in {PARAMS}, got {kind!r}")
    generator = torch.Generator().manual_seed(seed)
    if kind == "pixel":
        return PixelParam(shape, sd, bool(decorrelate), generator)
    return FFTParam(shape, sd, decorrelate=True if decorrelate is None else decorrelate, generator=generator)


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 4 or shape[1] != 3 or min(shape) < 1 or not all(isinstance(s, int) for s in shape):
        raise InputError(f"expected an image shape (B, 3, H, W), got {shape}")


