"""Approximate nearest neighbours for large collections: an HNSW graph (FAISS) over a PCA projection of the
unit-length features proposes candidates, and each candidate's cosine is then computed exactly.

Why this shape (docs/benchmarks/neighbours.md has the measurements): an exact search costs N² dot products
(a million images: about 1.3e15 multiply-adds); HNSW visits a few thousand rows per query. Distances in
the top ``DIMS`` principal directions are cheap and rank the true neighbours among the first few ``k``;
re-ranking ``CANDIDATES x k`` of them on the full features makes every similarity returned an exact one,
so thresholds on it (near copies, the label vote's weights, outlier distances) mean what they mean below
the size limit. FAISS is an optional dependency (``pip install transferlab[ann]``); without it the exact
search runs at every size, after one log line.
"""

from __future__ import annotations

import logging
from functools import cache

import numpy as np
import torch

from ..features.runtime import cpu_count

log = logging.getLogger(__name__)

DIMS = 512  # principal directions the graph is built on: on the dev suite's cached features, 256 already rank 99.5%
# of the true 10 nearest among the first 30; the synthetic set (noise in every direction) needs 512
GRAPH_LINKS = 32  # HNSW's M: links per node (the FAISS default); memory 2 x 32 x 4 bytes a row
EF_CONSTRUCTION = 64  # candidates kept while linking a new row; higher builds slower for little recall here
EF_SEARCH = 128  # candidates kept while searching (at least CANDIDATES x k)
CANDIDATES = 4  # rows re-ranked exactly per row wanted
SAMPLE = 20_000  # rows the projection is fitted on
BLOCK = 16_384  # rows projected (float32) at a time: the whole set is never held in float32
RERANK_BLOCK = 512  # query rows whose candidates are gathered at a time (512 x 40 x 1280 float32 = 105 MB)


@cache
def available() -> bool:
    """Whether FAISS can be imported; says once in the log when it cannot."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        log.info("faiss is not installed: nearest neighbours are searched exactly (slow past ~50,000 images; pip install transferlab[ann])")
        return False
    return True


def nearest(query: torch.Tensor, base: torch.Tensor, k: int, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Approximately the ``k`` most similar rows of ``base`` for each row of ``query`` (unit length, any float
    dtype: float16 is enough), similarities exact; ``k`` <= len(base) - exclude_self.

    Returns:
        (similarities, indices), each (Nq, k), most similar first; a row the graph offered fewer than ``k``
        candidates has similarity -3 in the places it lacks (``neighbours.nearest`` searches it exactly).
    """
    import faiss

    faiss.omp_set_num_threads(cpu_count())
    mean, components = _projection(base)
    index = faiss.IndexHNSWFlat(components.shape[1], GRAPH_LINKS)  # L2 on the projection: on unit rows, the cosine order
    index.hnsw.efConstruction = EF_CONSTRUCTION
    for start in range(0, len(base), BLOCK):
        index.add(_project(base[start:start + BLOCK], mean, components))
    wanted = min(len(base), CANDIDATES * k + int(exclude_self))
    index.hnsw.efSearch = max(EF_SEARCH, wanted)
    sims, idx = np.empty((len(query), k), np.float32), np.empty((len(query), k), np.int64)
    for start in range(0, len(query), BLOCK):
        q = query[start:start + BLOCK]
        _, found = index.search(_project(q, mean, components), wanted)  # (B, wanted), -1 where none
        for s in range(0, len(q), RERANK_BLOCK):
            rows = slice(start + s, start + s + RERANK_BLOCK)
            sims[rows], idx[rows] = _rerank(q[s:s + RERANK_BLOCK], base, found[s:s + RERANK_BLOCK], k, start + s if exclude_self else None)
    return sims, idx


def _projection(base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and the top ``DIMS`` principal directions (D, r) of a sample of ``base``'s rows."""
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(base), min(SAMPLE, len(base)), replace=False))
    sample = base[torch.from_numpy(pick)].float()  # (S, D)
    mean = sample.mean(0)
    centred = sample - mean
    _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    return mean, vectors[:, -min(DIMS, base.shape[1]):].flip(1).contiguous()


def _project(rows: torch.Tensor, mean: torch.Tensor, components: torch.Tensor) -> np.ndarray:
    """Shape: (B, D) -> (B, r) float32, contiguous (what FAISS takes)."""
    return np.ascontiguousarray(((rows.float() - mean) @ components).numpy())


def _rerank(query: torch.Tensor, base: torch.Tensor, found: np.ndarray, k: int, self_from: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each row's candidates by exact cosine; rows of ``query`` are ``base[self_from:]``
    when not None (a row is not its own neighbour). Shape: query (B, D), found (B, C) -> (B, k) twice."""
    cand = torch.from_numpy(found)
    invalid = cand < 0
    if self_from is not None:
        invalid |= cand == torch.arange(self_from, self_from + len(query))[:, None]
    gathered = base[cand.clamp(min=0)].float()  # (B, C, D)
    sims = torch.einsum("bd,bcd->bc", query.float(), gathered).masked_fill(invalid, -3.0)
    top = torch.topk(sims, k, dim=1)
    return top.values.numpy(), cand.gather(1, top.indices).numpy()  # a similarity of -3: the graph offered fewer than k
