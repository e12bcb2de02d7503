"""Callback types shared across the package (progress reports: the library itself never prints)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, int, int], None]  # (stage, done, total), e.g. ("features", 128, 600)
CountProgress = Callable[[int, int], None]  # (done, total) of one stage: images, files or bytes
