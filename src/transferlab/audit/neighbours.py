"""Nearest neighbours by cosine similarity of pooled features, in blocks so 10,000 images need no 10k x 10k matrix."""

from __future__ import annotations

import numpy as np
import torch


def normalise(features: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Rows scaled to unit length, float32 (cosine similarity is then a dot product).

    Shape:
        (N, D) -> (N, D).
    """
    x = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features).float()
    return torch.nn.functional.normalize(x, dim=1)


def nearest(query: torch.Tensor, base: torch.Tensor, k: int, exclude_self: bool = False, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar rows of ``base`` for each row of ``query`` (both already normalised).

    Args:
        exclude_self: ``query`` is ``base``: row i is not its own neighbour.

    Returns:
        (similarities, indices), each (Nq, k') with k' = min(k, available), most similar first.
    """
    k = min(k, len(base) - int(exclude_self))
    if k <= 0 or not len(query):
        return np.zeros((len(query), 0), np.float32), np.zeros((len(query), 0), np.int64)
    sims, idx = [], []
    for start in range(0, len(query), block):
        s = query[start:start + block] @ base.T  # (B, Nb)
        if exclude_self:
            rows = torch.arange(s.shape[0])
            s[rows, rows + start] = -2.0
        top = torch.topk(s, k, dim=1)
        sims.append(top.values.numpy())
        idx.append(top.indices.numpy())
    return np.concatenate(sims), np.concatenate(idx)


def candidate_pairs(features: torch.Tensor, k: int, threshold: float, neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> list[tuple[int, int, float]]:
    """Unordered pairs (i < j, similarity) among each image's ``k`` nearest neighbours with similarity >= ``threshold``."""
    sims, idx = neighbours if neighbours is not None else nearest(features, features, k, exclude_self=True)
    sims, idx = sims[:, :k], idx[:, :k]
    pairs: dict[tuple[int, int], float] = {}
    for i, j in zip(*np.nonzero(sims >= threshold)):
        a, b = sorted((int(i), int(idx[i, j])))
        pairs[(a, b)] = float(sims[i, j])
    return [(a, b, s) for (a, b), s in sorted(pairs.items())]
