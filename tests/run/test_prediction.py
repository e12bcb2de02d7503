"""One prediction, one scoring path: ``predict --json``, the page's ``/predict``, a Ray row and the ONNX runtime
give the same answer for the same photo through the same run.

Regression: the four disagreed (the page scored in its own fp32 code path while ``predict`` resolved ``auto`` to
bf16 and decoded JPEGs at a reduced scale; the ONNX export dropped "none of these"; Ray rows had no answer
column), and ``predict`` ignored the run's "not sure" setting that only the page read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import transferlab as tl

from ..conftest import OXFORD_MINI, make_photo, needs_oxford

TOL = 1e-4


def other_domain(folder: Path) -> list[Path]:
    """Photos of none of the classes: stripes and noise, at sizes the crop has to resize."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    x = np.arange(160)[None, :, None]
    stripes = ((np.sin(x / 2.0) > 0) * 220 + rng.normal(0, 15, (120, 160, 3))).clip(0, 255).astype(np.uint8)
    Image.fromarray(stripes).save(folder / "stripes.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)).save(folder / "noise.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "noise.png")
    return [folder / "stripes.jpg", folder / "noise.jpg", folder / "noise.png"]


def answers_of_predict(run_dir: Path, files: list[Path], k: int) -> list[dict[str, Any]]:
    from typer.testing import CliRunner

    from transferlab.cli import app

    result = CliRunner().invoke(app, ["predict", str(run_dir), *map(str, files), "--json", "-k", str(k), "--precision", "fp32", "-q"])
    assert result.exit_code == 0, result.output
    return [_common(r) for r in json.loads(result.stdout)]


def answers_of_page(run_dir: Path, files: list[Path], k: int) -> list[dict[str, Any]]:
    from fastapi.testclient import TestClient

    from transferlab.serve import ServeConfig, create_app

    client = TestClient(create_app(tl.load(run_dir), ServeConfig(max_files=len(files), precision="fp32")))
    reply = client.post(f"/predict?k={k}", files=[("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in files])
    assert reply.status_code == 200, reply.text
    return [_common(r) for r in reply.json()["results"]]


def answers_of_ray(run_dir: Path, files: list[Path], k: int, out: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    from transferlab.cluster import RayConfig, ray_predict

    done = ray_predict(tl.load(run_dir), files, out, k, config=RayConfig(workers=1, precision="fp32"))
    rows = pq.read_table(done.path).to_pylist()
    return [{"label": r["label"], "closest": r["label_1"], "labels": [r[f"label_{i}"] for i in range(1, k + 1)], "probs": [r[f"prob_{i}"] for i in range(1, k + 1)],
             "score": r["in_distribution"], "in_distribution": r["label"] is not None, "unsure": None} for r in rows]


def answers_of_onnx(run_dir: Path, files: list[Path], k: int, out: Path) -> list[dict[str, Any]]:
    path = tl.export(tl.load(run_dir), "onnx", out, check=False).path
    return [_common(r) for r in tl.OnnxModel(path).predict(files, k)]


def _common(r: Any) -> dict[str, Any]:
    return {"label": r["label"], "closest": r["top"][0]["label"], "labels": [t["label"] for t in r["top"]], "probs": [t["prob"] for t in r["top"]],
            "score": r["score"], "in_distribution": r["in_distribution"], "unsure": r["unsure"]}


def assert_same(want: list[dict[str, Any]], got: list[dict[str, Any]], name: str) -> None:
    assert len(got) == len(want), name
    for i, (a, b) in enumerate(zip(want, got)):
        where = f"{name}, photo {i}"
        assert (b["label"], b["closest"], b["labels"], b["in_distribution"]) == (a["label"], a["closest"], a["labels"], a["in_distribution"]), where
        np.testing.assert_allclose(b["probs"], a["probs"], atol=TOL, rtol=0, err_msg=where)
        assert b["score"] is not None and abs(b["score"] - a["score"]) <= TOL, (where, a["score"], b["score"])
        assert b["unsure"] in (None, a["unsure"]), where  # Ray rows carry no "not sure" column


def check_all_four_agree(run_dir: Path, files: list[Path], k: int, tmp_path: Path) -> list[dict[str, Any]]:
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    pytest.importorskip("onnxruntime", reason="the [export] extra is not installed")
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    want = answers_of_predict(run_dir, files, k)
    assert_same(want, answers_of_page(run_dir, files, k), "/predict")
    assert_same(want, answers_of_onnx(run_dir, files, k, tmp_path / "m.onnx"), "onnx")
    assert_same(want, answers_of_ray(run_dir, files, k, tmp_path / "rows.parquet"), "ray")
    return want


def test_predict_the_page_a_ray_row_and_onnx_give_the_same_answer(tiny_run_dir: Path, tmp_path: Path) -> None:
    files = [make_photo(tmp_path / "new" / f"{c}.jpg", c, seed=700 + c, size=(96, 80)) for c in range(3)] + other_domain(tmp_path / "other")
    files.append(make_photo(tmp_path / "new" / "big.jpg", 2, seed=710, size=(640, 480)))  # a JPEG every path decodes at a reduced scale
    want = check_all_four_agree(tiny_run_dir, files, 3, tmp_path)
    assert {a["in_distribution"] for a in want} == {True, False}  # "none of these" is part of what must agree
    assert all(a["label"] is None for a in want[3:6])  # the stripes and the noise look like none of the classes


@needs_oxford
@pytest.mark.slow
def test_the_four_agree_on_oxford_mini_with_the_bundled_weights(tmp_path: Path) -> None:
    ds = tl.load_dataset(OXFORD_MINI)
    run = tl.train(ds, out=tmp_path / "run", precision="fp32")  # efficientnet_lite0, kNN score
    test, _ = ds.evaluation_split("test")  # photos the kNN bank does not hold (at distance 0 the score's square root magnifies rounding)
    files = [next(s.path for s in test if ds.classes[s.label] == c and s.path.suffix == ".jpg") for c in ds.classes]
    big = tmp_path / "big" / "photo_big.jpg"  # a phone-sized, grainy JPEG: decoded at a reduced scale (draft) by every path alike
    big.parent.mkdir()
    pixels = np.asarray(Image.open(files[1]).convert("RGB").resize((3000, 2250)), float) + np.random.default_rng(0).normal(0, 8, (2250, 3000, 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(big, quality=92)
    files += [big, *other_domain(tmp_path / "other")]
    want = check_all_four_agree(run.directory, files, 3, tmp_path)
    assert [a["closest"] for a in want[:3]] == ds.classes and {a["in_distribution"] for a in want} == {True, False}


def test_predict_and_the_page_honour_the_not_sure_setting_stored_with_the_run(tiny_run_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    from transferlab.serve import set_threshold

    run_dir = shutil.copytree(tiny_run_dir, tmp_path / "run")
    meta = json.loads((run_dir / "model.json").read_text())
    meta["confidence"]["temperature"] = 100.0  # probabilities near 1/3 (the kNN score, and so "none of these", stay as they were)
    meta["serve"] = {"unsure_below": 0.2}  # as 0.1's set_threshold wrote it, straight into model.json
    meta.pop("digests")  # 0.1's runs had no digests (an edit of a run that has them is refused as damage)
    (run_dir / "digests.json").unlink()
    (run_dir / "model.json").write_text(json.dumps(meta))
    photo = next(Path(meta["data"]["root"]).glob("fox/*_1.jpg"))  # one of the run's own photos: accepted
    for answers in (answers_of_predict(run_dir, [photo], 3), answers_of_page(run_dir, [photo], 3)):
        assert answers[0]["in_distribution"] and 0.2 < answers[0]["probs"][0] < 0.9 and answers[0]["unsure"] is False
    set_threshold(run_dir, 0.9)
    assert json.loads((run_dir / "model.json").read_text())["serve"] == {"unsure_below": 0.9} and tl.load(run_dir).record.serve.unsure_below == 0.9
    assert answers_of_predict(run_dir, [photo], 3)[0]["unsure"] is True
    assert answers_of_page(run_dir, [photo], 3)[0]["unsure"] is True
    assert tl.load(run_dir).predict(photo).unsure is True


def test_a_prediction_reads_like_the_dict_predict_returned_in_0_1(tiny_run_dir: Path, tmp_path: Path) -> None:
    run = tl.load(tiny_run_dir)
    p = run.predict(make_photo(tmp_path / "cat.jpg", 0, seed=702), k=2)
    assert p["label"] == p.label and p["top"][0]["prob"] == p.top[0].prob == p.prob and p["path"] == str(tmp_path / "cat.jpg")
    assert p == p.to_dict() and json.loads(json.dumps(p.to_dict())) == p.to_dict()
    assert {"path", "label", "closest", "prob", "in_distribution", "score", "top"} <= set(p) and p.get("error") is None
