"""End to end on the real shared Oxford mini photos with the real bundled weights."""

import json
from pathlib import Path

import pytest

import transferlab as tl

from .conftest import OXFORD_MINI, needs_oxford

pytestmark = [needs_oxford, pytest.mark.slow]


def test_probe_on_oxford_mini_reaches_the_reference_accuracy(tmp_path: Path) -> None:
    ds = tl.load_dataset(OXFORD_MINI)
    assert ds.layout == "oxford" and ds.classes == ["Abyssinian", "Bengal", "american_bulldog"]
    run = tl.train(ds, out=tmp_path / "run")  # defaults: efficientnet_lite0, probe, fastest precision
    m = run.meta["metrics"]
    assert m["split"] == "test" and m["n"] >= 290
    assert m["accuracy"] >= 0.94, m
    assert m["species_accuracy"] >= 0.98, m
    assert any("mat" in s.reason.lower() or s.path.suffix == ".mat" for s in ds.skipped)

    # warm cache: a second training extracts nothing; a reloaded run scores the same
    again = tl.train(tl.load_dataset(OXFORD_MINI))
    assert again.meta["timing"]["images_computed"] == 0
    assert again.meta["metrics"]["accuracy"] == m["accuracy"]
    loaded = tl.load(tmp_path / "run")
    assert loaded.evaluate(tl.load_dataset(OXFORD_MINI)).accuracy == m["accuracy"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["accuracy"] == m["accuracy"] and "species_accuracy" in metrics
