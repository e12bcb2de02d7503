"""The recipe of an ideal class image, as a plain dataclass: importing it loads no torch (the CLI
reads its defaults for its help)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import ConfigError

PARAMS = ("pixel", "fft")  # how the image is represented (see param.py)
OBJECTIVES = ("logit", "log_prob")
# Default TV weight per parameterisation. Adam moves every free pixel by about lr per step whatever its
# gradient, so the pixel param needs a stronger pull to smoothness than the fft one, whose 1/f scaling
# already favours low frequencies; on fft, 1000 gives flat saturated blobs (BENCHMARKS.md).
DEFAULT_TV = {"pixel": 1000.0, "fft": 300.0}


@dataclass(frozen=True)
class DreamConfig:
    """The recipe of an ideal class image; the defaults are the benchmarked ones (BENCHMARKS.md)."""

    steps: int = 256  # Adam steps
    lr: float = 0.05  # Adam learning rate on the image parameters
    size: int | None = None  # side of the square image in pixels; None: the model's input size
    seed: int = 0  # noise and transform draws
    tv: float | None = None  # weight of the total variation per pixel subtracted (0: none; None: DEFAULT_TV[param])
    l2: float = 100.0  # weight of the mean squared distance from grey subtracted (keeps colours off saturation)
    param: str = "fft"  # "fft" (1/f spectrum, decorrelated colour) or "pixel" (free pixels)
    decorrelate: bool | None = None  # colour decorrelation; None: on for fft, off for pixel
    jitter: int = 8  # random shift in pixels (0: off)
    scale: float = 0.1  # random zoom 1 ± scale (0: off)
    rotate: float = 10.0  # random rotation ± degrees (0: off)
    objective: str = "logit"  # "logit" (raise the class) or "log_prob" (raise it against the others)
    frames: int = 0  # also keep this many snapshots of the optimisation

    def check(self) -> None:
        """Raise ConfigError for a value outside its range, before any work."""
        if self.param not in PARAMS:
            raise ConfigError(f"expected param in {PARAMS}, got {self.param!r}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"expected objective in {OBJECTIVES}, got {self.objective!r}")
        for name in ("steps", "frames", "jitter"):
            if getattr(self, name) < 0:
                raise ConfigError(f"expected {name} >= 0, got {getattr(self, name)}")
        for name in ("lr", "tv", "l2", "scale", "rotate"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ConfigError(f"expected {name} >= 0, got {getattr(self, name)}")
        if self.lr == 0:
            raise ConfigError("expected lr > 0, got 0")
        if self.scale >= 1:
            raise ConfigError(f"expected scale < 1 (zoom 1 ± scale), got {self.scale}")
        if self.size is not None and not 16 <= self.size <= 2048:
            raise ConfigError(f"expected size between 16 and 2048 pixels, got {self.size}")

    @property
    def tv_weight(self) -> float:
        """The TV weight in force: ``tv``, or the parameterisation's default."""
        return DEFAULT_TV.get(self.param, 0.0) if self.tv is None else self.tv
