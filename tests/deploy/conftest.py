"""A tiny trained run shared by the export / serve / report tests (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import TINY, make_photo


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path) -> Path:
    """A probe run of the tiny backbone on 3 colour classes x 10 photos, saved with its evaluation."""
    import transferlab as tl

    root = tmp_path_factory.mktemp("data") / "photos"
    for c, name in enumerate(["cat", "dog", "fox"]):
        for i in range(10):
            make_photo(root / name / f"{name}_{i}.jpg", c, seed=100 * c + i)
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    out = tmp_path_factory.mktemp("runs") / "run"
    cache = tmp_path_factory.mktemp("featcache")
    tl.train(tl.load_dataset(root), TINY, weights=tiny_weights, out=out, cache_dir=cache, precision="fp32")
    return out
