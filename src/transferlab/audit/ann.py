"""Approximate nearest neighbours for large collections: an inverted-file index (FAISS k-means lists of the
unit-length features), each query scanned exactly against the rows of its nearest lists.

Why this shape (docs/benchmarks/neighbours.md has the measurements): an exact search costs N² dot products
(a million images: about 1.3e15 multiply-adds). Here each row is filed under the nearest of about
N / ``ROWS_PER_LIST`` centroids, and each query is compared, on the full features, with the rows of its
``probes(N)`` nearest lists only: a few thousand rows instead of N. The scan goes list by list (all the
queries that probe a list against its rows: one matrix product, as ``faiss.contrib.big_batch_search``
does), so it runs at matrix-product speed, and every similarity returned is an exact cosine: thresholds on
it (near copies, the label vote's weights, outlier distances) mean what they mean below the size limit.
An HNSW graph (the first design) levelled off near 0.97 recall@10 on 100,000 synthetic rows however wide
its search. FAISS is an optional dependency (``pip install transferlab[ann]``);
without it the exact search runs at every size, after one log line.
"""

from __future__ import annotations

import logging
import math
from functools import cache

import numpy as np
import torch

from ..features.runtime import cpu_count

log = logging.getLogger(__name__)

ROWS_PER_LIST = 1_000  # rows a list holds on average: N / 1,000 centroids
PROBES = 8  # lists scanned per query at 100,000 rows; ``probes`` adds one per decade past that
RESCAN = 0.05  # the fraction of queries, those whose k-th similarity came out lowest, scanned again wider:
# a row far from everything has its neighbours scattered over lists whose centroids are far from it
WIDEN = 8  # lists scanned in that second pass, as a multiple of the first pass's
TRAIN_PER_LIST = 40  # rows the k-means is fitted on per centroid (FAISS warns below 39)
KMEANS_ITERATIONS = 10
BLOCK = 16_384  # rows converted to float32 at a time: the whole set is never held in float32
SCAN_PAIRS = 1 << 24  # similarities held at once by a list's scan (64 MB of float32)


@cache
def available() -> bool:
    """Whether FAISS can be imported; says once in the log when it cannot."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        log.info("faiss is not installed: nearest neighbours are searched exactly (slow past ~50,000 images; pip install transferlab[ann])")
        return False
    return True


def lists_for(n_base: int) -> int:
    """Inverted lists for a base of ``n_base`` rows (at least 1)."""
    return max(1, round(n_base / ROWS_PER_LIST))


def probes(n_base: int) -> int:
    """Lists scanned per query: ``PROBES`` up to 100,000 rows, one more per tenfold growth past that (a
    larger set has more lists, and a row's true neighbours spread over more of them)."""
    extra = max(0.0, math.log10(max(n_base, 1) / 100_000))
    return min(lists_for(n_base), PROBES + math.ceil(extra - 1e-9))


def nearest(query: torch.Tensor, base: torch.Tensor, k: int, exclude_self: bool = False, n_probes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Approximately the ``k`` most similar rows of ``base`` for each row of ``query`` (unit length, any float
    dtype: float16 is enough), similarities exact; ``k`` <= len(base) - exclude_self.

    Returns:
        (similarities, indices), each (Nq, k), most similar first; a row whose lists held fewer than ``k``
        other rows has similarity -3 in the places it lacks (``neighbours.nearest`` searches it exactly).
    """
    import faiss

    faiss.omp_set_num_threads(cpu_count())
    quantizer = _centroids(base, lists_for(len(base)))
    wanted = min(n_probes or probes(len(base)), quantizer.ntotal)
    if exclude_self:  # query is base: one search files each row (its nearest list) and picks its probes
        probed = _probes(query, quantizer, wanted)
        owner = probed[:, 0].copy()
    else:
        owner = _probes(base, quantizer, 1)[:, 0]
        probed = _probes(query, quantizer, wanted)  # (Nq, P)
    sims, idx = _scan(query, base, owner, probed, k, exclude_self)
    wider = min(wanted * WIDEN, quantizer.ntotal)
    if wider > wanted and RESCAN > 0:
        again = np.argsort(sims[:, -1], kind="stable")[:math.ceil(RESCAN * len(query))]  # lowest k-th similarity first
        rows = torch.from_numpy(again)
        more = _probes(query[rows], quantizer, wider)
        sims[again], idx[again] = _scan(query[rows], base, owner, more, k, exclude_self, query_ids=again)
    return sims, idx


def _probes(rows: torch.Tensor, quantizer, wanted: int) -> np.ndarray:
    """The ``wanted`` lists whose centroids are nearest each row, nearest first. Shape: (N, D) -> (N, wanted)."""
    return np.concatenate([quantizer.search(_float(rows[s:s + BLOCK]), wanted)[1] for s in range(0, len(rows), BLOCK)])


def _centroids(base: torch.Tensor, n_lists: int):
    """A FAISS flat index of ``n_lists`` k-means centroids, fitted on ``TRAIN_PER_LIST`` sampled rows each."""
    import faiss

    rng = np.random.default_rng(1)
    pick = np.sort(rng.choice(len(base), min(len(base), TRAIN_PER_LIST * n_lists), replace=False))
    sample = np.concatenate([_float(base[torch.from_numpy(pick[s:s + BLOCK])]) for s in range(0, len(pick), BLOCK)])
    kmeans = faiss.Kmeans(sample.shape[1], n_lists, niter=KMEANS_ITERATIONS, seed=1, min_points_per_centroid=1, max_points_per_centroid=10 ** 9)
    kmeans.train(sample)
    quantizer = faiss.IndexFlatL2(sample.shape[1])  # L2 between unit rows: the cosine order
    quantizer.add(kmeans.centroids)
    return quantizer


def _float(rows: torch.Tensor) -> np.ndarray:
    """Shape: (B, D) -> (B, D) float32, contiguous (what FAISS takes): one block, never the whole set."""
    return np.ascontiguousarray(rows.float().numpy())


def _scan(
    query: torch.Tensor, base: torch.Tensor, owner: np.ndarray, probed: np.ndarray, k: int, exclude_self: bool, query_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the ``k`` best by exact cosine among the base rows filed under its ``probed`` lists,
    one list at a time; with ``exclude_self``, query row i is base row ``query_ids[i]`` (default i).
    Shape: owner (Nb,), probed (Nq, P) -> (Nq, k) twice."""
    from faiss import ResultHeap

    heap = ResultHeap(len(query), k, keep_max=True)  # a similarity of -inf where fewer than k were seen
    members = _buckets(owner, probed.max(initial=0) + 1)
    askers = _buckets(probed.ravel(), probed.max(initial=0) + 1, divide=probed.shape[1])
    for lst, rows in enumerate(members):
        q_rows = askers[lst]
        if not len(rows) or not len(q_rows):
            continue
        block_base = base[torch.from_numpy(rows)].float()  # (M, D)
        step = max(1, SCAN_PAIRS // len(rows))
        for s in range(0, len(q_rows), step):
            q = q_rows[s:s + step]
            sims = query[torch.from_numpy(q)].float() @ block_base.T  # (B, M)
            if exclude_self:
                same = torch.from_numpy((q if query_ids is None else query_ids[q])[:, None] == rows[None, :])
                sims.masked_fill_(same, -2.0)
            top = torch.topk(sims, min(k, len(rows)), dim=1)
            heap.add_result_subset(q, top.values.numpy(), rows[top.indices.numpy()])
    heap.finalize()
    sims, idx = heap.D, heap.I
    missing = (idx < 0) | (sims < -1.5)  # never filled, or only the row itself was there
    sims[missing] = -3.0
    return sims, idx


def _buckets(values: np.ndarray, n: int, divide: int = 1) -> list[np.ndarray]:
    """For each bucket b < n, the positions p (divided by ``divide``) with ``values[p] == b``, ascending."""
    order = np.argsort(values, kind="stable")
    bounds = np.searchsorted(values[order], np.arange(n + 1))
    return [(order[bounds[b]:bounds[b + 1]] // divide).astype(np.int64) for b in range(n)]
