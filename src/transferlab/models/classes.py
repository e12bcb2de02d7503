"""Turn what a user types ("siamese", "Bengal", "281") into a class index of a model."""

from __future__ import annotations

import difflib
import re
from typing import Any

import numpy as np

from ..errors import ConfigError


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name).strip().lower()


def resolve_class(classes: list[str], query: str | int) -> int:
    """Index of the class ``query`` names: exact, then case/space-insensitive, then whole-word, then fuzzy.

    Raises:
        ConfigError: the name matches no class (close names are suggested) or several (all are listed).
    """
    if isinstance(query, int) or str(query).isdigit():
        index = int(query)
        if not 0 <= index < len(classes):
            raise ConfigError(f"class index {index} is out of range — the model has {len(classes)} classes (0..{len(classes) - 1})")
        return index
    if query in classes:
        return classes.index(query)
    wanted = _norm(query)
    if not wanted:
        raise ConfigError("expected a class name, got an empty string")
    normed = [_norm(c) for c in classes]
    for rule in (
        lambda n: n == wanted,
        lambda n: re.sub(r" \(\d+\)$", "", n) == wanted,  # "crane" for "crane (134)", "crane (517)"
        lambda n: re.search(rf"\b{re.escape(wanted)}\b", n) is not None,
        lambda n: n.startswith(wanted),
    ):
        hits = [i for i, n in enumerate(normed) if rule(n)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            shown = ", ".join(repr(classes[i]) for i in hits[:12]) + (" …" if len(hits) > 12 else "")
            raise ConfigError(f"class {query!r} is ambiguous: it matches {shown} — give the full name")
    close = difflib.get_close_matches(wanted, normed, n=5, cutoff=0.75)
    if len(close) == 1 or (close and difflib.SequenceMatcher(None, wanted, close[0]).ratio() >= 0.9):
        return normed.index(close[0])
    hint = f"did you mean {', '.join(repr(classes[normed.index(c)]) for c in close)}?" if close else "run `transferlab predict` or see the run's model.json for the class names"
    raise ConfigError(f"unknown class {query!r} — {hint}")


def top_k(probs: Any, classes: list[str], k: int = 5, decimals: int | None = None) -> list[dict[str, Any]]:
    """The ``k`` most probable classes of one image, most probable first: ``[{"label", "index", "prob"}, ...]``
    (the row shape every command and the API share). ``probs``: (C,) numpy array or CPU tensor."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    order = np.argsort(-p, kind="stable")[: min(k, len(classes))]
    return [{"label": classes[j], "index": int(j), "prob": float(p[j]) if decimals is None else round(float(p[j]), decimals)} for j in order]
