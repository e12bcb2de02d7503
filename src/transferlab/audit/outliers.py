"""Outliers: images unlike any other in feature space (a photo of a person in a folder of cats)."""

from __future__ import annotations

import numpy as np
import torch

from .neighbours import nearest


def outlier_scores(features: torch.Tensor, k: int = 5, neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Mean cosine distance of each image to its ``k`` nearest neighbours (features unit length).

    ``neighbours``: ``nearest(features, features, >= k, exclude_self=True)`` when already computed.

    Shape:
        (N, D) -> (N,).
    """
    sims, _ = neighbours if neighbours is not None else nearest(features, features, k, exclude_self=True)
    sims = sims[:, :k]
    return (1.0 - sims).mean(1) if sims.shape[1] else np.zeros(len(features))


def robust_z(scores: np.ndarray) -> np.ndarray:
    """How many robust standard deviations (1.4826 MAD) above the median each score is."""
    median = np.median(scores)
    mad = 1.4826 * np.median(np.abs(scores - median))
    return (scores - median) / max(mad, 1e-9)
