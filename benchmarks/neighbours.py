"""Nearest neighbours at scale: the audit's searches on synthetic pooled features with planted findings.

    .venv/bin/python benchmarks/neighbours.py crossover [--sizes 5000,10000,20000,40000]
    .venv/bin/python benchmarks/neighbours.py recall [--sizes 10000,100000,1000000] [--queries 500] [--probes 8]
    .venv/bin/python benchmarks/neighbours.py scale [--n 1000000] [--dims 1280]

The rows imitate pooled CNN features (EfficientNet-Lite0's, 1,280-d): non-negative, one cluster per class
(1,000 rows a class), a shared low-rank variation and per-class noise, tuned so that each row's 1st and 10th
nearest cosine have the medians (0.75, 0.72) the dev suite's cached features have. They are kept in float16,
unit length, generated a block at a time.

``crossover``: the exact blocked product against the approximate index (``transferlab.audit.ann``) on a
self-search of n rows, k = 10, seconds each. ``recall``: per size, the approximate search against the exact
one on ``queries`` random rows: recall@10, the recall of the neighbour pairs at or above the near-copy cosine
(0.80, ``AuditConfig.candidate_similarity``), and how often the 10-neighbour label vote picks the same class
(``--probes`` overrides ``ann.PROBES``, the lists scanned per query at 100,000 rows).
``scale``: the audit's searches on n rows with planted findings: 500 near copies (a row plus noise, cosine
about 0.95), 500 flipped labels, 50 outliers (non-negative rows on 16 random feature channels: an image that
fires channels no class fires together, far from every row); the near-copy pairs, the neighbour label vote
(``low_confidence_issues`` on the vote alone) and the outlier z-scores from one search, and the "unseen"
search (``evaluate``) of a 10% test split against the other 90% with 500 planted copies of training rows;
time, peak memory (ru_maxrss), how many planted items each finds, the same counts from the exact search of
the planted rows, and each search's recall on 500 random query rows against the exact search.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from transferlab.audit import ann
from transferlab.audit.labels import low_confidence_issues, neighbour_probabilities  # noqa: F401  (the rule vote_confidence mirrors)
from transferlab.audit.neighbours import EXACT_UP_TO, candidate_pairs, exact_nearest, nearest, normalise
from transferlab.audit.outliers import outlier_scores, robust_z

K = 10
THRESHOLD = 0.80  # AuditConfig.candidate_similarity
RESULTS = Path(__file__).parent / "results" / "audit"


def synthetic(n: int, dims: int = 1280, seed: int = 0, block: int = 50_000) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` unit-length float16 rows like pooled CNN features, and their class labels (1,000 rows a class)."""
    rng = np.random.default_rng(seed)
    classes, rank = max(10, n // 1000), 48
    centres = np.maximum(rng.standard_normal((classes, dims), dtype=np.float32) + 0.3, 0)
    shared = rng.standard_normal((rank, dims), dtype=np.float32) * (0.35 / np.sqrt(np.arange(1, rank + 1, dtype=np.float32)))[:, None]
    spread = (0.55 * np.exp(rng.normal(0, 0.5, classes))).astype(np.float32)  # some classes tight, some loose
    labels = rng.integers(0, classes, n)
    out = torch.empty((n, dims), dtype=torch.float16)
    for s in range(0, n, block):
        e = min(n, s + block)
        x = centres[labels[s:e]] + rng.standard_normal((e - s, rank), dtype=np.float32) @ shared
        x += rng.standard_normal((e - s, dims), dtype=np.float32) * spread[labels[s:e], None]
        out[s:e] = normalise(np.maximum(x, 0), torch.float16)
    return out, labels


def exact_sample(rows: torch.Tensor, queries: np.ndarray, k: int = K, block: int = 65_536, base: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact neighbours of ``rows[queries]`` among ``base`` (default ``rows``, self excluded), the base read a
    block at a time (float16 kept)."""
    q = rows[torch.from_numpy(queries)].float()
    if base is not None:
        rows, queries = base, np.full(len(queries), -1)  # no query row is a base row
    best_s, best_i = torch.full((len(q), k), -3.0), torch.zeros((len(q), k), dtype=torch.long)
    for start in range(0, len(rows), block):
        s = q @ rows[start:start + block].float().T  # (Q, B)
        inside = (queries >= start) & (queries < start + len(s[0]))
        s[torch.from_numpy(np.flatnonzero(inside)), torch.from_numpy(queries[inside] - start)] = -2.0
        top = torch.topk(torch.cat([best_s, s], 1), k, dim=1)
        best_i = torch.cat([best_i, torch.arange(start, start + s.shape[1]).expand(len(q), -1)], 1).gather(1, top.indices)
        best_s = top.values
    return best_s.numpy(), best_i.numpy()


def compare(exact: tuple[np.ndarray, np.ndarray], approx: tuple[np.ndarray, np.ndarray], labels: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """Recall@10, recall of the pairs >= THRESHOLD, agreement of the label vote, on the sampled queries."""
    (es, ei), (as_, ai) = exact, approx
    recall = np.mean([len(set(ei[r]) & set(ai[r])) / K for r in range(len(ei))])
    want = [(r, j) for r in range(len(ei)) for j, s in zip(ei[r], es[r]) if s >= THRESHOLD]
    got = {(r, j) for r in range(len(ai)) for j, s in zip(ai[r], as_[r]) if s >= THRESHOLD}
    same_vote = np.mean(_vote(labels, es, ei) == _vote(labels, as_, ai))
    return {"recall@10": round(float(recall), 4), f"pairs>={THRESHOLD}": len(want),
            f"recall pairs>={THRESHOLD}": round(sum(p in got for p in want) / max(1, len(want)), 4),
            "same vote": round(float(same_vote), 4)}


def _vote(labels: np.ndarray, sims: np.ndarray, idx: np.ndarray, temperature: float = 0.05) -> np.ndarray:
    """The class the label vote (``labels.neighbour_probabilities``' weights) picks for each query row."""
    votes = np.zeros((len(idx), int(labels.max()) + 1))
    np.add.at(votes, (np.repeat(np.arange(len(idx)), idx.shape[1]), labels[idx].ravel()), np.exp((sims.astype(np.float64) - 1.0) / temperature).ravel())
    return votes.argmax(1)


def peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)  # kilobytes on Linux


def run_crossover(sizes: list[int], dims: int) -> list[dict[str, float]]:
    out = []
    for n in sizes:
        rows, _ = synthetic(n, dims)
        unit = rows.float()
        t = time.perf_counter()
        exact_nearest(unit, unit, K, torch.arange(n))
        exact_s = time.perf_counter() - t
        t = time.perf_counter()
        nearest(rows, rows, K, exclude_self=True, exact_up_to=0)
        out.append({"n": n, "exact_s": round(exact_s, 2), "approximate_s": round(time.perf_counter() - t, 2)})
        print(out[-1], flush=True)
    return out


def run_recall(sizes: list[int], dims: int, queries: int) -> list[dict[str, float]]:
    out = []
    for n in sizes:
        rows, labels = synthetic(n, dims)
        picked = np.sort(np.random.default_rng(1).choice(n, min(queries, n), replace=False))
        t = time.perf_counter()
        sims, idx = nearest(rows, rows, K, exclude_self=True, exact_up_to=0)
        seconds = time.perf_counter() - t
        row = {"n": n, "lists": ann.lists_for(n), "probes": ann.probes(n), "approximate_s": round(seconds, 1), "peak_gb": peak_gb(), "load": load(),
               **compare(exact_sample(rows, picked), (sims[picked], idx[picked]), labels, picked)}
        out.append(row)
        print(row, flush=True)
    return out


def load() -> list[float]:
    """The machine's 1, 5 and 15-minute load averages (2 cores here: above 2, other work shared them)."""
    return [round(x, 2) for x in os.getloadavg()]


def plant(rows: torch.Tensor, labels: np.ndarray, targets: np.ndarray, sources: np.ndarray, seed: int) -> None:
    """Make ``rows[targets]`` near copies of ``rows[sources]`` (cosine about 0.95), with their labels."""
    rng = np.random.default_rng(seed)
    src = rows[torch.from_numpy(sources)].float()
    noise = torch.from_numpy(rng.standard_normal(src.shape, dtype=np.float32)) * (0.33 / np.sqrt(src.shape[1]))
    rows[torch.from_numpy(targets)] = normalise(src + noise, torch.float16)
    labels[targets] = labels[sources]


def outlier_rows(count: int, dims: int, rng: np.random.Generator, channels: int = 16) -> torch.Tensor:
    """``count`` unit rows, each non-negative on ``channels`` random feature channels and zero elsewhere: an
    image that fires a few channels no class fires together (pooled features of an unrelated photo), so its
    nearest row is far (cosine about 0.16 where a row's nearest is about 0.8)."""
    x = np.zeros((count, dims), np.float32)
    for r in range(count):
        x[r, rng.choice(dims, channels, replace=False)] = np.abs(rng.standard_normal(channels)) + 0.5
    return normalise(x, torch.float16)


def run_scale(n: int, dims: int, seed: int = 0) -> dict[str, object]:
    t0 = time.perf_counter()
    started_load = load()
    rows, labels = synthetic(n, dims, seed)
    rng = np.random.default_rng(seed + 1)
    chosen = rng.permutation(n)[:2050]
    sources, copies, flipped, outliers = chosen[:500], chosen[500:1000], chosen[1000:1500], chosen[1500:1550]
    plant(rows, labels, copies, sources, seed)
    n_classes = int(labels.max()) + 1
    labels[flipped] = (labels[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes
    rows[torch.from_numpy(outliers)] = outlier_rows(len(outliers), dims, rng)
    made = time.perf_counter() - t0
    print("generated", round(made, 1), "s, load", load(), flush=True)
    t = time.perf_counter()
    near = nearest(rows, rows, K, exclude_self=True)
    search = time.perf_counter() - t
    pairs = {(a, b) for a, b, _ in candidate_pairs(rows, K, THRESHOLD, near)}
    own, top = vote_confidence(labels, near, n_classes)
    typical = np.bincount(labels, weights=own, minlength=n_classes) / np.maximum(np.bincount(labels, minlength=n_classes), 1)
    issues = (own < 0.15 * typical[labels]) & (top != labels)  # labels.low_confidence_issues on the vote, row blocks
    scores = outlier_scores(rows, 5, near)
    z = robust_z(scores)
    audit = {"search_s": round(search, 1), "peak_gb": peak_gb(), "load": load(),
             "copies_found": sum((min(a, b), max(a, b)) in pairs for a, b in zip(sources, copies)), "copies_planted": len(copies),
             "candidate_pairs": len(pairs), "flipped_found": int(issues[flipped].sum()), "flipped_planted": len(flipped),
             "flagged_by_vote": int(issues.sum()), "outliers_found": int((z[outliers] > 6.0).sum()), "outliers_planted": len(outliers),
             "flagged_outliers": int((z > 6.0).sum())}
    missed = flipped[~issues[flipped]]  # why: how sure the vote typically is in the class each was moved to
    audit["flipped_missed_class_typical"] = [round(float(x), 3) for x in np.quantile(typical[labels[missed]], [0, 0.5, 1])] if len(missed) else []
    audit["class_typical_quantiles"] = [round(float(x), 3) for x in np.quantile(typical, [0, 0.05, 0.5])]
    print("audit", audit, flush=True)
    t = time.perf_counter()
    audit["exact_check"] = exact_check(rows, labels, typical, scores, sources, copies, flipped, outliers, n_classes)
    picked = np.sort(np.random.default_rng(seed + 3).choice(n, 500, replace=False))
    audit["recall"] = compare(exact_sample(rows, picked), (near[0][picked], near[1][picked]), labels, picked)
    audit["check_s"] = round(time.perf_counter() - t, 1)
    print("audit checked against the exact search", audit["exact_check"], audit["recall"], flush=True)
    del near
    unseen = run_unseen(rows, labels, rng, seed)
    return {"n": n, "dims": dims, "lists": ann.lists_for(n), "probes": ann.probes(n), "generate_s": round(made, 1), "load_at_start": started_load,
            "audit": audit, "unseen": unseen, "total_s": round(time.perf_counter() - t0, 1), "peak_gb": peak_gb(), "load_at_end": load()}


def exact_check(rows: torch.Tensor, labels: np.ndarray, typical: np.ndarray, scores: np.ndarray,
                sources: np.ndarray, copies: np.ndarray, flipped: np.ndarray, outliers: np.ndarray, n_classes: int) -> dict[str, int]:
    """What the exact search finds of each plant (exact neighbours of the planted rows only; the vote's class
    means and the outlier median / MAD are the full run's): whether a miss is the search's or the rule's."""
    es, ei = exact_sample(rows, copies)
    copies_found = sum(bool(((ei[r] == s) & (es[r] >= THRESHOLD)).any()) for r, s in enumerate(sources))
    es, ei = exact_sample(rows, flipped)
    own, top = vote_confidence(labels, (es, ei), n_classes, rows=flipped)
    flipped_found = int(((own < 0.15 * typical[labels[flipped]]) & (top != labels[flipped])).sum())
    es, _ = exact_sample(rows, outliers)
    exact_scores = scores.copy()
    exact_scores[outliers] = (1.0 - es[:, :5]).mean(1)
    outliers_found = int((robust_z(exact_scores)[outliers] > 6.0).sum())
    return {"copies_found": copies_found, "flipped_found": flipped_found, "outliers_found": outliers_found}


def vote_confidence(labels: np.ndarray, near: tuple[np.ndarray, np.ndarray], n_classes: int, rows: np.ndarray | None = None,
                    block: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """``labels.neighbour_probabilities``' vote (same weights and smoothing) a block of rows at a time: each
    row's probability of its own label and its most probable class (the full (N, C) float64 matrix would be
    8 GB at a million rows and 1,000 classes). ``rows``: which rows ``near`` holds (default all)."""
    sims, idx = near
    mine = labels if rows is None else labels[rows]
    own, top = np.empty(len(idx)), np.empty(len(idx), np.int64)
    for s in range(0, len(idx), block):
        part = slice(s, s + block)
        probs = _vote_probs(labels, sims[part], idx[part], n_classes)
        own[part], top[part] = probs[np.arange(len(probs)), mine[part]], probs.argmax(1)
    return own, top


def _vote_probs(labels: np.ndarray, sims: np.ndarray, idx: np.ndarray, n_classes: int) -> np.ndarray:
    """``labels.neighbour_probabilities``' vote (same weights, same smoothing) for some rows given their neighbours."""
    votes = np.full((len(idx), n_classes), 1e-3)
    np.add.at(votes, (np.repeat(np.arange(len(idx)), K), labels[idx[:, :K]].ravel()), np.exp((sims[:, :K].astype(np.float64) - 1.0) / 0.05).ravel())
    return votes / votes.sum(1, keepdims=True)


def run_unseen(rows: torch.Tensor, labels: np.ndarray, rng: np.random.Generator, seed: int) -> dict[str, object]:
    """``evaluate``'s search: test rows (the last 10%) with a near copy among the training rows (the rest)."""
    n = len(rows)
    split = n - n // 10
    sources, copies = rng.choice(split, 500, replace=False), split + rng.choice(n - split, 500, replace=False)
    plant(rows, labels, copies, sources, seed + 2)
    t = time.perf_counter()
    test, train = rows[split:], rows[:split]
    sims, idx = nearest(test, train, K)
    seconds = time.perf_counter() - t
    flagged = {int(q) for q in np.flatnonzero((sims >= THRESHOLD).any(1))}
    found = sum(int(c - split) in flagged and int(s) in set(idx[c - split][sims[c - split] >= THRESHOLD].tolist()) for s, c in zip(sources, copies))
    out = {"test": n - split, "train": split, "exact": len(test) * len(train) <= EXACT_UP_TO ** 2, "search_s": round(seconds, 1), "copies_found": found,
           "copies_planted": len(copies), "test_rows_with_a_candidate": len(flagged), "peak_gb": peak_gb(), "load": load()}
    es, ei = exact_sample(rows, copies, base=train)
    out["exact_check"] = {"copies_found": sum(bool(((ei[r] == s) & (es[r] >= THRESHOLD)).any()) for r, s in enumerate(sources))}
    picked = np.sort(np.random.default_rng(seed + 4).choice(n - split, 500, replace=False))
    out["recall"] = compare(exact_sample(test, picked, base=train), (sims[picked], idx[picked]), labels[:split], picked)
    print("unseen", out, flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("crossover", "recall", "scale"))
    p.add_argument("--sizes", default="")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dims", type=int, default=1280)
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--probes", type=int, default=None, help="lists scanned per query at 100,000 rows (ann.PROBES)")
    p.add_argument("--save", action="store_true", help="also write benchmarks/results/audit/neighbours-<what>.json (scale: neighbours-scale-<n>.json)")
    args = p.parse_args(argv)
    if not ann.available():
        sys.exit("faiss is not installed: pip install 'transferlab[ann]'")
    torch.manual_seed(0)
    if args.probes:
        ann.PROBES = args.probes
    if args.what == "crossover":
        result: object = run_crossover([int(s) for s in (args.sizes or "5000,10000,20000,40000").split(",")], args.dims)
    elif args.what == "recall":
        result = run_recall([int(s) for s in (args.sizes or "10000,100000,1000000").split(",")], args.dims, args.queries)
    else:
        result = run_scale(args.n, args.dims)
    print(json.dumps(result, indent=1))
    if args.save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        name = f"neighbours-scale-{args.n}" if args.what == "scale" else f"neighbours-{args.what}"
        (RESULTS / f"{name}.json").write_text(json.dumps({"command": " ".join(sys.argv), "result": result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
