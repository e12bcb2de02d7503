"""Nearest neighbours past the exact size: the approximate index finds what the exact search finds."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch

from transferlab.audit import ann, neighbours
from transferlab.audit.neighbours import candidate_pairs, exact_nearest, nearest, normalise

needs_faiss = pytest.mark.skipif(not ann.available(), reason="faiss is not installed (pip install transferlab[ann])")


def _planted(n: int = 3000, dims: int = 64, copies: int = 30, seed: int = 0) -> tuple[torch.Tensor, set[tuple[int, int]]]:
    """Unit rows in 20 loose clusters (neighbours well below cosine 0.8) and ``copies`` near copies (about 0.98)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((20, dims))[rng.integers(0, 20, n)] * 0.3 + rng.standard_normal((n, dims))
    pick = rng.permutation(n)[: 2 * copies]
    sources, targets = pick[:copies], pick[copies:]
    x[targets] = x[sources] + rng.standard_normal((copies, dims)) * 0.2
    return normalise(x.astype(np.float32)), {(int(min(a, b)), int(max(a, b))) for a, b in zip(sources, targets)}


@needs_faiss
def test_the_index_finds_the_same_near_copies_as_the_exact_search(monkeypatch):
    unit, planted = _planted()
    used, original = [], ann.nearest
    monkeypatch.setattr(ann, "nearest", lambda *a, **kw: used.append(1) or original(*a, **kw))
    approx = nearest(unit, unit, 10, exclude_self=True, exact_up_to=100)
    exact = nearest(unit, unit, 10, exclude_self=True)  # 3,000 rows: exact by default
    assert used == [1]
    found = {(a, b) for a, b, _ in candidate_pairs(unit, 10, 0.8, approx)}
    assert found == {(a, b) for a, b, _ in candidate_pairs(unit, 10, 0.8, exact)} == planted
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx[1], exact[1])]) >= 0.95
    np.testing.assert_allclose(approx[0][:, 0], exact[0][:, 0], atol=1e-5)  # similarities are exact ones


@needs_faiss
def test_the_index_searches_one_set_against_another_and_takes_float16():
    unit, planted = _planted()
    query, base = unit[:300], unit[300:].half()
    sims, idx = nearest(query, base, 5, exact_up_to=10)
    esims, eidx = exact_nearest(query, base, 5)
    assert (idx[:, 0] == eidx[:, 0]).mean() >= 0.95
    assert sims.shape == (300, 5) and (sims[:, :-1] >= sims[:, 1:]).all()


def test_below_the_size_limit_the_search_is_exact(monkeypatch):
    monkeypatch.setattr(ann, "nearest", lambda *a, **kw: pytest.fail("the index was used below the size limit"))
    unit, _ = _planted(500)
    sims, idx = nearest(unit, unit, 10, exclude_self=True)
    full = unit @ unit.T
    full.fill_diagonal_(-2.0)
    top = torch.topk(full, 10, dim=1)
    np.testing.assert_array_equal(idx, top.indices.numpy())
    assert neighbours.EXACT_UP_TO >= 10_000  # small collections keep the exact answers they always had


def test_without_faiss_the_search_is_exact_and_says_so(monkeypatch, caplog):
    unit, planted = _planted(800)
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    ann.available.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="transferlab.audit.ann"):
            sims, idx = nearest(unit, unit, 10, exclude_self=True, exact_up_to=10)
    finally:
        ann.available.cache_clear()
    assert "faiss is not installed" in caplog.text
    esims, eidx = exact_nearest(unit, unit, 10, torch.arange(len(unit)))
    np.testing.assert_array_equal(idx, eidx)
    assert {(a, b) for a, b, _ in candidate_pairs(unit, 10, 0.8, (sims, idx))} == planted


@needs_faiss
def test_the_unseen_copy_search_finds_planted_copies_through_the_index(monkeypatch):
    """``evaluate``'s search (``copies_in``): test rows that are near copies of training rows, past the size limit."""
    from pathlib import Path

    from transferlab.audit import duplicates

    unit, planted = _planted()
    monkeypatch.setattr(neighbours, "EXACT_UP_TO", 100)
    monkeypatch.setattr(duplicates, "verify", lambda paths, pairs: dict.fromkeys(pairs, 1.0))  # features alone decide here
    used, original = [], ann.nearest
    monkeypatch.setattr(ann, "nearest", lambda *a, **kw: used.append(1) or original(*a, **kw))
    test = sorted({b for _, b in planted})  # the later row of each pair plays the test image
    train = [i for i in range(len(unit)) if i not in set(test)]
    paths = [Path(f"{i}.png") for i in range(len(unit))]
    found = duplicates.copies_in([paths[i] for i in test], [None] * len(test), unit[test], [paths[i] for i in train], [None] * len(train), unit[train])
    assert used == [1]
    partner = {b: a for a, b in planted}
    assert {test[q]: train[b] for q, (b, kind) in found.items()} == {t: partner[t] for t in test}


def test_the_index_scans_more_lists_as_the_collection_grows():
    assert ann.lists_for(1) == 1 and ann.lists_for(100_000) == 100 and ann.lists_for(1_000_000) == 1_000
    assert ann.probes(100_000) == ann.PROBES and ann.probes(1_000_000) == ann.PROBES + 1 and ann.probes(10_000_000) == ann.PROBES + 2
    assert ann.probes(2_000) == 2  # never more lists than there are


@needs_faiss
def test_rows_far_from_everything_are_scanned_again_wider(monkeypatch):
    """A row whose k-th neighbour came out least similar is searched again over ``WIDEN`` times the lists:
    its neighbours are scattered over lists whose centroids are far from it (the first design missed them)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((30, 64))[rng.integers(0, 30, 3000)] + rng.standard_normal((3000, 64)) * 0.3  # 30 tight clusters
    far = rng.choice(3000, 30, replace=False)
    x[far] = rng.standard_normal((30, 64))  # 30 rows of no cluster
    unit = normalise(x.astype(np.float32))
    monkeypatch.setattr(ann, "ROWS_PER_LIST", 100)  # 30 lists
    monkeypatch.setattr(ann, "PROBES", 1)
    esims, eidx = exact_nearest(unit, unit, 10, torch.arange(len(unit)))
    monkeypatch.setattr(ann, "RESCAN", 0.0)
    _, once = ann.nearest(unit, unit, 10, exclude_self=True)
    monkeypatch.setattr(ann, "RESCAN", 0.02)
    monkeypatch.setattr(ann, "WIDEN", 30)  # every list
    sims, twice = ann.nearest(unit, unit, 10, exclude_self=True)
    assert (once[far] != eidx[far]).any()  # one list is not enough for them
    np.testing.assert_array_equal(twice[far], eidx[far])  # the wider pass gives them their exact neighbours
    np.testing.assert_allclose(sims[far], esims[far], atol=1e-5)


@needs_faiss
def test_a_small_query_against_a_large_base_stays_exact_below_the_pair_limit(monkeypatch):
    """The cut-off counts query x base pairs: 100 test rows against 2,900 training rows is 290,000 pairs."""
    unit, _ = _planted()
    monkeypatch.setattr(ann, "nearest", lambda *a, **kw: pytest.fail("the index was used below the pair limit"))
    sims, idx = nearest(unit[:100], unit[100:], 10, exact_up_to=539)  # 539² = 290,521 >= 290,000
    np.testing.assert_array_equal(idx, exact_nearest(unit[:100], unit[100:], 10)[1])


def test_past_the_exact_size_features_are_read_and_searched_in_float16(monkeypatch):
    assert neighbours.feature_dtype(neighbours.EXACT_UP_TO) == torch.float32  # small sets: as they always were
    assert neighbours.feature_dtype(neighbours.EXACT_UP_TO + 1) == torch.float16
    monkeypatch.setattr(neighbours, "EXACT_UP_TO", 10)
    assert neighbours.feature_dtype(11) == torch.float16


def test_past_the_size_limit_the_audit_and_the_unseen_copy_search_read_float16_and_find_every_plant(monkeypatch, tiny_weights, tmp_path):
    """The large-collection path end to end on the hand-made collection (limit lowered to 10 images):
    features read as float16, searched through the index when FAISS is there, every planted finding found."""
    from pathlib import Path

    import transferlab as tl
    from transferlab.audit import core

    from ..conftest import TINY
    from .test_audit import _collection

    planted = _collection(tmp_path / "photos")
    monkeypatch.setattr(neighbours, "EXACT_UP_TO", 10)
    dtypes, original = [], core.extract_features
    monkeypatch.setattr(core, "extract_features", lambda *a, **kw: dtypes.append(kw.get("dtype")) or original(*a, **kw))
    result = tl.audit(tl.load_dataset(tmp_path / "photos"), TINY, weights=tiny_weights, precision="fp32", cache_dir=tmp_path / "cache")
    found = {kind: {Path(f.path) for f in result.of(kind)} for kind in result.summary()}
    assert planted["exact"] in found["exact duplicate"] and planted["near"] in found["near duplicate"]
    assert planted["outlier"] in found["outlier"] and planted["label"] in {Path(f.path) for f in result.of("label")}
    assert dtypes == [torch.float16]


@needs_faiss
def test_a_few_queries_against_a_much_larger_base_stay_exact_past_the_pair_limit(monkeypatch):
    """Filing the base under its centroids costs more than the exact product of a handful of queries."""
    unit, _ = _planted()
    monkeypatch.setattr(ann, "nearest", lambda *a, **kw: pytest.fail("the index was used for 5 queries against 2,995 rows"))
    sims, idx = nearest(unit[:5], unit[5:], 10, exact_up_to=10)  # 14,975 pairs > 100, but 599 base rows per query
    np.testing.assert_array_equal(idx, exact_nearest(unit[:5], unit[5:], 10)[1])
    monkeypatch.setattr(neighbours, "BASE_PER_QUERY", 1_000)
    used = []
    monkeypatch.setattr(ann, "nearest", lambda *a, **kw: used.append(1) or exact_nearest(unit[:5], unit[5:], 10))
    nearest(unit[:5], unit[5:], 10, exact_up_to=10)
    assert used == [1]
