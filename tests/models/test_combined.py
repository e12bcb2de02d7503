"""Several backbones (``--backbone A+B``) and multi-stage features (``--features multi``) as one network that
trains, fine-tunes, saves, loads, exports, serves and is explained like a single backbone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import transferlab as tl
from transferlab.models.combined import CombinedNet

from ..conftest import TINY, make_photo_folder
from ..test_cli import cli

OTHER = "test_resnet"  # another family, normalised differently from TINY (mean 0.5 against ImageNet's)
PAIR = f"{TINY}+{OTHER}"


@pytest.fixture(scope="module")
def pair_weights(family_weights) -> dict[str, Path]:
    return {TINY: family_weights(TINY), OTHER: family_weights(OTHER)}


@pytest.fixture(scope="module")
def pair_trained(tmp_path_factory: pytest.TempPathFactory, pair_weights: dict[str, Path]) -> tl.Run:
    """The run as training left it in memory (saved to its directory too)."""
    root = make_photo_folder(tmp_path_factory.mktemp("data") / "photos")
    return tl.train(tl.load_dataset(root), PAIR, weights=pair_weights, out=tmp_path_factory.mktemp("runs") / "pair", precision="fp32")


@pytest.fixture(scope="module")
def pair_run(pair_trained: tl.Run) -> Path:
    return pair_trained.directory


def test_combined_features_are_each_members_own_features_side_by_side(pair_weights: dict[str, Path]) -> None:
    pair = tl.create_backbone(PAIR, pair_weights)
    singles = [tl.create_backbone(n, pair_weights[n]).model for n in (TINY, OTHER)]
    assert singles[0].preprocess.mean != singles[1].preprocess.mean  # each member must normalise its own way
    x = torch.rand(2, 3, *pair.model.preprocess.input_size)
    with torch.no_grad():
        got, want = pair.model.features(x), torch.cat([m.features(x) for m in singles], dim=1)
    assert got.shape == (2, pair.model.feature_dim) and torch.allclose(got, want, atol=1e-5)
    assert pair.name == PAIR and pair.model.classes == []  # the members' ImageNet heads are not the combination's


def test_members_of_other_sizes_see_the_input_resized_in_proportion(family_weights) -> None:
    nets = [tl.create_backbone(n, family_weights(n)).model.net for n in (TINY, OTHER)]
    net = CombinedNet(nets, [TINY, OTHER], [((0.5,) * 3, (0.5,) * 3)] * 2, [(64, 64), (48, 48)]).eval()
    seen: list[tuple[int, ...]] = []
    hook = net.members[1].conv1[0].register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    with torch.no_grad():
        net(torch.rand(1, 3, 64, 64)), net(torch.rand(1, 3, 32, 32))
    hook.remove()
    assert net.input_size == (64, 64) and seen == [(48, 48), (24, 24)]


def test_a_combined_run_saves_loads_and_predicts_the_same(pair_trained: tl.Run, pair_run: Path) -> None:
    meta = json.loads((pair_run / "model.json").read_text())
    assert meta["format_version"] == 2 and [m["arch"] for m in meta["network"]["members"]] == [TINY, OTHER]
    assert meta["backbone"]["name"] == PAIR and meta["backbone"]["features"] == "pooled"
    run = tl.load(pair_run)
    files = sorted(Path(meta["data"]["root"]).glob("*/*_2.jpg"))
    again = run.predict(files, precision="fp32")
    assert [r["top"] for r in pair_trained.predict(files, precision="fp32")] == [r["top"] for r in again]  # as trained, before saving
    assert run.record.metrics["accuracy"] >= 0.8  # colour classes: a working head separates them


def test_a_newer_format_is_refused_in_one_line_by_a_reader_that_cannot_load_it(pair_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(pair_run, copy)
    meta = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({**meta, "format_version": 3}))
    with pytest.raises(tl.RunError, match="newer than this transferlab reads"):
        tl.load(copy)


def test_a_combined_run_exports_to_onnx_with_parity(pair_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the [export] extra (onnx, onnxruntime) is not installed")
    result = tl.export(tl.load(pair_run), "onnx", tmp_path / "pair.onnx")
    assert result.parity is not None and result.parity.ok and result.parity.top1_agree == result.parity.n >= 5


def test_gradcam_and_feature_maps_look_inside_the_first_member(pair_run: Path) -> None:
    run = tl.load(pair_run)
    photo = next(Path(run.meta["data"]["root"]).glob("cat/*.jpg"))
    cam = run.explain(photo)
    assert cam.layer.startswith("members.0.") and cam.heatmap.max() == pytest.approx(1.0)
    layers = [layer.name for layer in tl.list_layers(run.model)]
    assert any(n.startswith("members.0.") for n in layers) and any(n.startswith("members.1.") for n in layers)
    maps = tl.feature_maps(run.model, run.load_image(photo), layer="members.1.layer1")
    assert maps.activation.ndim == 4


def test_serve_answers_for_a_combined_run_as_the_library_does(pair_run: Path) -> None:
    pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
    from fastapi.testclient import TestClient

    from transferlab.serve import ServeConfig, create_app

    run = tl.load(pair_run)
    photo = next(Path(run.meta["data"]["root"]).glob("fox/*_3.jpg"))
    reply = TestClient(create_app(run, ServeConfig())).post("/predict?k=2&gradcam=true", files=[("files", (photo.name, photo.read_bytes(), "image/jpeg"))])
    got, want = reply.json()["results"][0], run.predict([photo], k=2, precision="fp32")[0]
    assert reply.status_code == 200 and [t["label"] for t in got["top"]] == [t["label"] for t in want["top"]]
    assert got["gradcam"].startswith("data:image/png")


def test_multi_features_train_fine_tune_and_reload(tmp_path: Path, tiny_weights: Path) -> None:
    root = make_photo_folder(tmp_path / "photos")
    run = tl.train(tl.load_dataset(root), TINY, "finetune", weights=tiny_weights, features="multi", out=tmp_path / "run", precision="fp32",
                   finetune_config=tl.FinetuneConfig(epochs=1))
    assert run.record.finetune["history"] and run.record.backbone["features"] == "multi"
    assert run.model.feature_dim == tl.create_backbone(TINY, tiny_weights).model.feature_dim + 32 + 48 + 64  # the last 3 stages of test_efficientnet
    files = sorted(root.glob("*/*_4.jpg"))
    assert [r["top"] for r in tl.load(tmp_path / "run").predict(files, precision="fp32")] == [r["top"] for r in run.predict(files, precision="fp32")]


def test_unfreezing_the_last_stages_of_a_combination_unfreezes_them_in_every_member(pair_weights: dict[str, Path]) -> None:
    from transferlab.train.finetune import frozen_modules

    net = tl.create_backbone(PAIR, pair_weights).model.net
    net.reset_classifier(3)
    frozen_modules(net, "1")
    trainable = {n.split(".")[1] for n, p in net.named_parameters() if p.requires_grad and n.startswith("members.")}
    frozen = {n.split(".")[1] for n, p in net.named_parameters() if not p.requires_grad}
    assert trainable == frozen == {"0", "1"}  # each member: its last stage learns, its stem stays
    assert not net.members[0].conv_stem.weight.requires_grad and not net.members[1].conv1[0].weight.requires_grad
    assert net.classifier.weight.requires_grad


def test_cli_trains_a_pair_with_a_file_per_member_and_predicts(capsys, monkeypatch, tmp_path: Path, pair_weights: dict[str, Path]) -> None:
    root = make_photo_folder(tmp_path / "photos")
    args = ["--weights", f"{TINY}={pair_weights[TINY]}", "--weights", f"{OTHER}={pair_weights[OTHER]}"]
    code, out, _ = cli(capsys, monkeypatch, "train", root, "--backbone", PAIR, *args, "--out", tmp_path / "run", "--fp32", "--quiet")
    assert code == 0 and f"trained {PAIR} probe" in out
    code, out, _ = cli(capsys, monkeypatch, "predict", tmp_path / "run", root / "cat" / "cat_1.jpg")
    assert code == 0 and out.split()[1] == "cat"


@pytest.mark.parametrize(("backbone", "weights", "words"), [
    (PAIR, ["one.safetensors"], "one --weights FILE cannot serve 2 backbones"),
    (f"{TINY}+{TINY}", [], "each backbone once"),
    (f"{TINY}+", [], "joined by '+'"),
    (PAIR, [f"resnet50={__file__}"], "not in"),
])
def test_bad_combinations_fail_in_one_line(capsys, monkeypatch, photo_folder: Path, backbone: str, weights: list[str], words: str) -> None:
    code, _, err = cli(capsys, monkeypatch, "train", photo_folder, "--backbone", backbone, *[a for w in weights for a in ("--weights", w)], "--quiet")
    assert code != 0 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
