"""Ideal class images: optimise an image from noise (or a photo) until the network is sure of a class.

Built lucent-style from four parts: ``param`` (how the image is represented, always in [0, 1]),
``transforms`` (random jitter/scale/rotate each step), ``objectives`` (class logit minus weighted total
variation and L2, composable) and ``render`` (the loop). ``dream`` puts them together with a recipe that
works across classes and models (``DreamConfig``'s defaults, chosen by ``benchmarks/dream.py``).
"""

from ..._lazy import attach
from .config import DEFAULT_TV, OBJECTIVES, PARAMS, DreamConfig

__all__ = ["DEFAULT_TV", "OBJECTIVES", "PARAMS", "DreamConfig"]  # and, loaded on first use, everything in .ideal
__getattr__, __dir__ = attach(__name__, fallback=".ideal")  # dream, Dream and the parts, loaded on first use
