"""Export to ONNX / TorchScript: the copy must answer as the PyTorch run does, and predict on its own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import transferlab as tl

from .conftest import make_photo
from .test_cli import cli

pytest.importorskip("onnxruntime", reason="the [export] extra (onnx, onnxruntime) is not installed")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch_on_the_evaluation_split(tiny_run_dir: Path, tmp_path: Path, fmt: str) -> None:
    run = tl.load(tiny_run_dir)
    result = tl.export(run, fmt, tmp_path / f"model.{fmt}")
    parity = result.parity
    assert result.path.is_file() and parity is not None
    assert "test split" in parity.source and parity.n >= 5  # the run's own data was found and used
    assert parity.ok and parity.top1_agree == parity.n and parity.max_abs_logit_diff <= 1e-3
    assert parity.max_score_diff is not None and parity.max_score_diff <= 1e-3 and parity.accept_agree == parity.n  # the in-distribution score too


@pytest.mark.parametrize("method", ["knn", "mahalanobis", "energy", "msp"])
def test_the_onnx_graph_carries_each_in_distribution_score(tiny_run_dir: Path, tmp_path: Path, method: str) -> None:
    run = tl.load(tiny_run_dir)
    run = tl.calibrate(run, run.training_data(), ood_score=method, precision="fp32")
    parity = tl.export(run, "onnx", tmp_path / "m.onnx").parity
    assert run.confidence.method == method and parity.ok and parity.max_score_diff <= 1e-4, parity.summary()
    photo = make_photo(tmp_path / "a.jpg", 1, seed=11)
    (got,), (want,) = tl.OnnxModel(tmp_path / "m.onnx").predict([photo]), run.predict([photo], precision="fp32")
    assert got["in_distribution"] == want["in_distribution"] and abs(got["score"] - want["score"]) <= 1e-4 * max(1.0, abs(want["score"]))  # Mahalanobis: hundreds


def test_a_knn_bank_that_drifts_from_its_export_fails_the_parity_check(tiny_run_dir: Path, tmp_path: Path) -> None:
    # regression: the check compared logits only, so an export whose "none of these" differed from predict's passed
    run = tl.load(tiny_run_dir)
    assert run.confidence.method == "knn"
    path = tl.export(run, "onnx", tmp_path / "m.onnx", check=False).path
    run.confidence.tensors["bank"] = run.confidence.tensors["bank"].roll(1, dims=1)  # the run's bank no longer the graph's
    parity = tl.check_parity(run, path, "onnx")
    assert parity.max_abs_logit_diff <= 1e-3 and not parity.ok and parity.max_score_diff > 1e-3


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load is deprecated upstream; the format is still asked for
def test_torchscript_file_carries_classes_and_loads_without_transferlab(tiny_run_dir: Path, tmp_path: Path) -> None:
    run = tl.load(tiny_run_dir)
    path = tl.export(run, "torchscript", tmp_path / "m.pt", check=False).path
    extra = {"transferlab.json": ""}
    scripted = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["transferlab.json"])["classes"] == run.classes
    x = run.load_image(next(Path(run.meta["data"]["root"]).glob("cat/*.jpg")))
    assert torch.allclose(scripted(x), run.model(x), atol=1e-4)  # forward: the logits, as before scores were exported
    logits, score = scripted.scored(x)
    assert torch.allclose(logits, run.model(x), atol=1e-4) and abs(score.item() - run.predict(x, precision="fp32")[0]["score"]) <= 1e-4


def test_onnx_predict_agrees_with_run_predict_and_reports_bad_files(tiny_run_dir: Path, tmp_path: Path) -> None:
    run = tl.load(tiny_run_dir)
    path = tl.export(run, "onnx", tmp_path / "m.onnx", check=False).path
    root = Path(run.meta["data"]["root"])
    files = sorted(root.glob("*/*_1.jpg")) + [root / "dog" / "broken.jpg"]
    onnx_rows = tl.OnnxModel(path).predict(files, k=2)
    torch_rows = run.predict(files, k=2, precision="fp32")
    assert [r["path"] for r in onnx_rows] == [str(f) for f in files]  # input order kept, bad file included
    assert "error" in onnx_rows[-1]
    for a, b in zip(onnx_rows[:-1], torch_rows[:-1]):
        assert [t["label"] for t in a["top"]] == [t["label"] for t in b["top"]]
        assert (a["label"], a["in_distribution"]) == (b["label"], b["in_distribution"]) and abs(a["score"] - b["score"]) <= 1e-4  # "none of these" too
        assert np.allclose([t["prob"] for t in a["top"]], [t["prob"] for t in b["top"]], atol=1e-4)


def test_parity_falls_back_to_given_images_then_random_when_the_data_is_gone(tiny_run_dir: Path, tmp_path: Path) -> None:
    moved = tmp_path / "run"
    shutil.copytree(tiny_run_dir, moved, ignore=shutil.ignore_patterns("model.onnx", "*.pt"))
    meta = json.loads((moved / "model.json").read_text())
    meta["data"]["root"] = str(tmp_path / "gone")
    meta.pop("digests")  # the edit stands in for data moved away; a run with digests would call it damage
    (moved / "digests.json").unlink()
    (moved / "model.json").write_text(json.dumps(meta))
    run = tl.load(moved)
    photos = [make_photo(tmp_path / "given" / f"{i}.jpg", i, seed=i) for i in range(3)]
    assert tl.export(run, "onnx", images=photos).parity.source == "3 given images"
    assert (moved / "model.onnx").is_file()  # default output: inside the run folder
    parity = tl.export(run, "onnx").parity
    assert "random" in parity.source and parity.ok


def test_a_broken_export_fails_the_parity_check(tiny_run_dir: Path, tmp_path: Path) -> None:
    run = tl.load(tiny_run_dir)
    path = tl.export(run, "torchscript", tmp_path / "m.pt", check=False).path
    with torch.no_grad():
        run.model.head.bias[0] += 5.0  # the run drifts from its export
    parity = tl.check_parity(run, path, "torchscript")
    assert not parity.ok and parity.max_abs_logit_diff >= 4.9


def test_cli_export_then_predict_with_onnxruntime(capsys, monkeypatch, tiny_run_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run_dir)
    code, out, _ = cli(capsys, monkeypatch, "export", run_dir, "--format", "onnx", "--json")
    report = json.loads(out)
    assert code == 0 and report["parity"]["ok"] and Path(report["path"]) == run_dir / "model.onnx"
    photo = next(Path(tl.load(run_dir).meta["data"]["root"]).glob("fox/*.jpg"))
    code, out, _ = cli(capsys, monkeypatch, "predict", run_dir, photo, "--runtime", "onnx", "--json")
    assert code == 0 and json.loads(out)[0]["top"][0]["label"] == "fox"


def test_cli_predict_onnx_without_export_says_what_to_do(capsys, monkeypatch, tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "a.jpg", 0, 0)
    code, _, err = cli(capsys, monkeypatch, "predict", tmp_path, photo, "--runtime", "onnx")
    assert code == 1 and "transferlab export" in err and "Traceback" not in err
