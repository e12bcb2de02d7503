"""Exact and near-duplicates: the same bytes (content hash), or the same photo re-encoded, resized,
slightly cropped, recoloured or mirrored (features propose, pixels confirm)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import AuditConfig
from .neighbours import candidate_pairs, nearest
from .pair_memo import PairMemo
from .pixels import verify


@dataclass(frozen=True)
class Pair:
    """Two images that are the same photo; ``a`` < ``b`` index the audited images."""

    a: int
    b: int
    kind: str  # "exact" (same bytes) | "near" (same photo, edited)
    similarity: float  # 1.0 for exact; the pixel agreement for near (see pixels.py)
    feature_similarity: float


def find_duplicates(
    paths: Sequence[Path], hashes: Sequence[str | None], features: torch.Tensor, config: AuditConfig = AuditConfig(),
    neighbours: tuple[np.ndarray, np.ndarray] | None = None, rank: Sequence[int] | None = None,
) -> list[Pair]:
    """Every pair of exact or near-duplicates among ``paths``.

    Args:
        paths: the images, in the order of ``features``' rows.
        hashes: each image's content hash (None: unknown).
        features: (N, D) unit-length pooled features.
        neighbours: ``nearest(features, features, k, exclude_self=True)`` when already computed.
        rank: per image, lower first (the split order): exact copies pair with their group's lowest
            ranked member, so every test copy of a training image is paired with a training image.

    Returns:
        Pairs sorted by (a, b). Exact copies are listed against the first of their group only.
    """
    pairs: dict[tuple[int, int], Pair] = {}
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        if h:
            by_hash[h].append(i)
    for group in by_hash.values():
        group.sort(key=lambda i: (rank[i] if rank is not None else 0, i))
        for j in group[1:]:
            a, b = sorted((group[0], j))
            pairs[(a, b)] = Pair(a, b, "exact", 1.0, 1.0)
    same = {i: g[0] for g in by_hash.values() for i in g}  # exact copies share one representative
    candidates = [(a, b, s) for a, b, s in candidate_pairs(features, config.neighbours, config.candidate_similarity, neighbours)
                  if same.get(a, a) != same.get(b, b) and (a, b) not in pairs]
    scores = verify(list(paths), [(a, b) for a, b, _ in candidates])
    for a, b, s in candidates:
        if scores[(a, b)] >= config.near_duplicate:
            pairs[(a, b)] = Pair(a, b, "near", round(scores[(a, b)], 4), round(s, 4))
    return [pairs[k] for k in sorted(pairs)]


def groups(pairs: Sequence[Pair]) -> list[list[int]]:
    """Connected groups of images linked by pairs (union-find), each sorted, largest first."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for p in pairs:
        parent[root(p.a)] = root(p.b)
    found: dict[int, list[int]] = defaultdict(list)
    for i in parent:
        found[root(i)].append(i)
    return sorted((sorted(g) for g in found.values()), key=lambda g: (-len(g), g[0]))


def copies_in(
    query_paths: Sequence[Path], query_hashes: Sequence[str | None], query_features: torch.Tensor,
    base_paths: Sequence[Path], base_hashes: Sequence[str | None], base_features: torch.Tensor, config: AuditConfig = AuditConfig(),
    memo: PairMemo | None = None,
) -> dict[int, tuple[int, str]]:
    """Which query images have an exact or near copy among the base images (e.g. test among train); pairs
    ``memo`` has compared before (by content) are not decoded again.

    Returns:
        query index -> (base index, "exact" | "near").
    """
    found: dict[int, tuple[int, str]] = {}
    where = {h: i for i, h in reversed(list(enumerate(base_hashes))) if h}
    for q, h in enumerate(query_hashes):
        if h and h in where:
            found[q] = (where[h], "exact")
    sims, idx = nearest(query_features, base_features, config.neighbours)
    candidates = [(q, int(idx[q, j])) for q in range(len(query_paths)) if q not in found for j in range(sims.shape[1]) if sims[q, j] >= config.candidate_similarity]
    if not candidates:
        return found
    scores = _verified([*query_paths, *base_paths], [*query_hashes, *base_hashes], [(q, len(query_paths) + b) for q, b in candidates], memo)
    for q, b in candidates:
        if q not in found and scores[(q, len(query_paths) + b)] >= config.near_duplicate:
            found[q] = (b, "near")
    return found


def _verified(paths: list[Path], hashes: list[str | None], pairs: list[tuple[int, int]], memo: PairMemo | None) -> dict[tuple[int, int], float]:
    """``verify``'s agreement of each pair of ``paths`` indices, read from ``memo`` where both files' contents were
    compared before; what is decoded now is added to it."""
    if memo is None:
        return verify(paths, pairs)
    known = {p: memo.get(hashes[p[0]], hashes[p[1]]) if hashes[p[0]] and hashes[p[1]] else None for p in pairs}
    fresh = verify(paths, [p for p, v in known.items() if v is None])
    for (i, j), agreement in fresh.items():
        if hashes[i] and hashes[j] and agreement != -1.0:  # an unreadable file is tried again next time
            memo.put(hashes[i], hashes[j], agreement)
    memo.save()
    return {p: known[p] if known[p] is not None else fresh[p] for p in pairs}
