"""The recipe of an ideal class image, as a plain dataclass: importing it loads no torch (the CLI
reads its defaults for its help)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..._options import option
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

    steps: int = option(256, "Optimiser steps.")  # Adam
    lr: float = option(0.05, "Adam learning rate.")  # on the image parameters
    size: int | None = option(None, "Image side in pixels [default: the model's input size].")
    seed: int = option(0, "Seed for the noise and the random transforms.")
    tv: float | None = option(None, "Total-variation weight (0: the noisy baseline) [default: 300 for fft, 1000 for pixel].")  # per pixel, subtracted
    l2: float = option(100.0, "Weight of an L2 penalty pulling pixels to grey.")  # keeps colours off saturation
    param: str = option("fft", "How the image is represented: fft (1/f spectrum, decorrelated colour) or pixel.", choices=PARAMS)  # how the image is represented (param.py)
    decorrelate: bool | None = option(None, "Colour decorrelation [default: on for fft, off for pixel].", flag="--decorrelate/--no-decorrelate")
    jitter: int = option(8, "Random shift in pixels (0: off).")
    scale: float = option(0.1, "Random zoom 1 ± SCALE (0: off).")
    rotate: float = option(10.0, "Random rotation ± degrees (0: off).")
    objective: str = option("logit", "Raise the class logit, or its log-probability against the others.", choices=OBJECTIVES)  # raise the class, or raise it against the others
    frames: int = option(0, "Also save a sheet of K snapshots of the optimisation (NAME_frames.png).")

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
