"""Nearest neighbours by cosine similarity of pooled features: exact, in blocks, up to ``EXACT_UP_TO``²
(query x base) pairs; past that an approximate index (``ann``: FAISS inverted lists, similarities still exact)."""

from __future__ import annotations

import numpy as np
import torch

from . import ann

EXACT_UP_TO = 50_000  # a self-search of more rows than this goes approximate (when FAISS is installed). The exact
# product grows as N² (1,280 dimensions, 2 busy cores: 7 s / 44 s for 10,000 / 20,000 rows); the inverted-file
# index compares each row with about 11,000 others plus filing N² / 1,000 pairs, so it does fewer dot products
# past about 12,000 rows (100,000 rows: 58 s; the exact product, 44 s x 25 from 20,000 rows, about 18 minutes).
# The limit stays at 50,000, where the exact answer still takes a minute or two, so that every collection up to
# it keeps the exact results it had
BASE_PER_QUERY = 300  # and only when the base has at most this many rows per query row: before answering any
# query the index files every base row under one of N / 1,000 centroids and fits them (about 0.0014 N² dot
# products), which the exact product of fewer than N / 700 queries undercuts; 300 leaves room for the index's
# per-list overheads (3,000 test images against a million training ones stay exact: 3e9 pairs, about 2 minutes)
_SIMS_PER_BLOCK = 1 << 26  # similarities held at once by the exact search (256 MB of float32)


def feature_dtype(n: int) -> torch.dtype:
    """What a collection of ``n`` rows is read and searched in: float32 up to ``EXACT_UP_TO`` (small-set
    results stay what they were), float16 past it (half the memory; cosines within 1e-3, and every
    similarity the search returns is recomputed from these same rows)."""
    return torch.float16 if n > EXACT_UP_TO else torch.float32


def normalise(features: torch.Tensor | np.ndarray, dtype: torch.dtype = torch.float32, block: int = 65_536) -> torch.Tensor:
    """Rows scaled to unit length (cosine similarity is then a dot product), as ``dtype``, computed in
    float32 a block at a time (float16 halves the memory of a large set; its cosines are within 1e-3).

    Shape:
        (N, D) -> (N, D).
    """
    x = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
    out = torch.empty(x.shape, dtype=dtype)
    for start in range(0, len(x), block):
        out[start:start + block] = torch.nn.functional.normalize(x[start:start + block].float(), dim=1).to(dtype)
    return out


def nearest(
    query: torch.Tensor, base: torch.Tensor, k: int, exclude_self: bool = False, block: int = 2048, exact_up_to: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar rows of ``base`` for each row of ``query`` (both already normalised).

    Exact when ``len(query) * len(base) <= exact_up_to ** 2`` (default ``EXACT_UP_TO``), when the base has more
    than ``BASE_PER_QUERY`` rows per query row, or when FAISS is not installed; otherwise approximate (recall@10
    0.997 at 100,000 synthetic rows but 0.869 at 1,000,000: docs/benchmarks/neighbours.md), each similarity exact.

    Args:
        exclude_self: ``query`` is ``base``: row i is not its own neighbour.

    Returns:
        (similarities, indices), each (Nq, k') with k' = min(k, available), most similar first.
    """
    k = min(k, len(base) - int(exclude_self))
    if k <= 0 or not len(query):
        return np.zeros((len(query), 0), np.float32), np.zeros((len(query), 0), np.int64)
    self_rows = torch.arange(len(query)) if exclude_self else None
    limit = EXACT_UP_TO if exact_up_to is None else exact_up_to
    if len(query) * len(base) <= limit * limit or len(base) > BASE_PER_QUERY * len(query) or not ann.available():
        return exact_nearest(query, base, k, self_rows, block)
    sims, idx = ann.nearest(query, base, k, exclude_self)
    short = np.flatnonzero((sims < -2.0).any(1))  # the graph offered fewer than k candidates: those rows exactly
    if len(short):
        rows = torch.from_numpy(short)
        sims[short], idx[short] = exact_nearest(query[rows], base, k, None if self_rows is None else rows, block)
    return sims, idx


def exact_nearest(query: torch.Tensor, base: torch.Tensor, k: int, self_rows: torch.Tensor | None = None, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """``nearest`` by the full product, ``block`` query rows at a time (fewer for a large base); ``self_rows[i]``:
    the row of ``base`` that query row i is (never its own neighbour). Float16 inputs are multiplied in float32."""
    base32 = base if base.dtype == torch.float32 else base.float()
    block = max(1, min(block, _SIMS_PER_BLOCK // max(1, len(base))))
    sims, idx = [], []
    for start in range(0, len(query), block):
        s = query[start:start + block].float() @ base32.T  # (B, Nb)
        if self_rows is not None:
            s[torch.arange(s.shape[0]), self_rows[start:start + block]] = -2.0
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
