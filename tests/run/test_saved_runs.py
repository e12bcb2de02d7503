"""Runs saved by every earlier version load with today's code and predict what they predicted when saved.

The fixtures in ``tests/fixtures/runs/`` were each written by that version's own code with
``tests/fixtures/runs/make_fixtures.py WORKTREE OUT`` (a probe of ``test_efficientnet`` on 3 colour classes x
10 generated photos, fp32, seed 0; its ``predict(photos, k=3)`` answers on ``photos/`` kept in ``expected.json``):

- ``record-v1``: commit 05f3893 (``2870b51^``, transferlab 0.1): no ``record_version``, ``phases`` or ``decision``;
- ``record-v2``: commit 85f06ae (``e2bbb2b^``): record version 2, no ``confidence``;
- ``record-v3``: commit e2501e0: record version 3 with a kNN "none of these" score (``confidence.safetensors``);
- ``record-v3-combined``: commit e2501e0, ``features="multi"``: format version 2 with a ``network`` field.

Their ``model.safetensors`` are byte-identical except the combined one's, so git stores two blobs. To add a
version: ``git worktree add /tmp/tl-vN COMMIT`` and run the script from the repository root with ``.venv``.
Predictions are compared in fp32: ``precision="auto"`` picks bf16 on CPUs that have it, which moved these
probabilities by up to 0.007 and flipped one "none of these" decision near the threshold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import transferlab as tl

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"
PHOTOS = sorted((FIXTURES / "photos").glob("*.png"))  # 2 per class, then noise and stripes from another domain
TOL = 1e-5

# What today's record says of each: record_version, kept, the "none of these" method (None: rejects nothing).
SAVED = {
    "record-v1": {"record_version": 1, "kept": "probe", "method": None, "features": None},
    "record-v2": {"record_version": 2, "kept": "probe", "method": None, "features": None},
    "record-v3": {"record_version": 3, "kept": "probe", "method": "knn", "features": "pooled"},
    "record-v3-combined": {"record_version": 3, "kept": "probe", "method": "knn", "features": "multi"},
}


def expected_rows(name: str) -> list[dict[str, Any]]:
    return json.loads((FIXTURES / name / "expected.json").read_text())["predictions"]


@pytest.mark.parametrize("name", SAVED)
def test_saved_run_reads_into_todays_record(name: str) -> None:
    run = tl.load(FIXTURES / name)
    want = SAVED[name]
    record = run.record
    assert record.record_version == want["record_version"]
    assert record.strategy == "probe" and record.kept == want["kept"]  # version 1 recorded no kept: its strategy
    assert record.backbone["name"] == "test_efficientnet" and record.backbone.get("features") == want["features"]
    assert run.classes == ["cat", "dog", "fox"] and record.data["root"] == "/data/photos"
    assert (record.confidence or {}).get("method") == want["method"]
    assert run.confidence.rejects == (want["method"] is not None)
    if name == "record-v1":
        assert record.phases == [] and record.decision is None  # 0.1 had neither
        assert "record_version" not in json.loads((FIXTURES / name / "model.json").read_text())
    else:
        assert [p.name for p in record.phases] == ["head"] and record.phases[0].fit_hashes
    if want["features"] == "multi":
        meta = json.loads((FIXTURES / name / "model.json").read_text())
        assert meta["format_version"] == 2 and meta["network"]["features"] == "multi"


@pytest.mark.parametrize("name", SAVED)
def test_saved_run_predicts_as_when_saved(name: str, tmp_path: Path) -> None:
    rows = tl.load(FIXTURES / name).predict(PHOTOS, k=3, precision="fp32", cache_dir=tmp_path)
    expected = expected_rows(name)
    assert len(rows) == len(expected) == len(PHOTOS)
    for photo, row, old in zip(PHOTOS, rows, expected):
        assert old["path"] == photo.name
        assert [t["label"] for t in row["top"]] == [t["label"] for t in old["top"]], photo.name
        assert [t["prob"] for t in row["top"]] == pytest.approx([t["prob"] for t in old["top"]], abs=TOL), photo.name
        assert row["prob"] == pytest.approx(old["top"][0]["prob"], abs=TOL)
        if "in_distribution" in old:  # the version had a "none of these" score
            assert row["label"] == old["label"] and row["in_distribution"] == old["in_distribution"], photo.name
            assert row["score"] == pytest.approx(old["score"], abs=TOL), photo.name
        else:  # before confidence: the top class, nothing rejected, no score
            assert row["label"] == old["top"][0]["label"] and row["in_distribution"] is True and row["score"] is None

