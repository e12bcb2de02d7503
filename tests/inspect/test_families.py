"""Every family the registry offers works with every command (tiny random-weight models, local weight files).

Regression: on ViTs `explain` died on the 64-px probe of ``last_conv_layer`` ("Input height (64) doesn't match
model (224)"), `dream` on its random rescaling ("Input height (217)"), and `features` refused every layer
(token outputs, not maps).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import transferlab as tl
from transferlab.inspect.hooks import as_map

from ..conftest import FAMILIES, make_photo
from ..test_cli import cli


@pytest.fixture(params=sorted(FAMILIES))
def family_run(request, family_weights) -> tl.Run:
    name = FAMILIES[request.param]
    return tl.open_model(name, family_weights(name))


def test_gradcam_feature_maps_and_dream_work_in_every_family(family_run: tl.Run) -> None:
    model = family_run.model
    before, mode = {k: v.clone() for k, v in model.state_dict().items()}, model.training
    image = torch.rand(1, 3, *model.preprocess.input_size, generator=torch.Generator().manual_seed(0))
    cam = tl.gradcam(model, image, target=3)
    assert cam.heatmap.shape == image.shape[-2:] and cam.coarse.ndim == 2  # (random weights may leave an all-zero map)
    assert 0 <= float(cam.heatmap.min()) and float(cam.heatmap.max()) <= 1 and torch.isfinite(cam.coarse).all()
    layers = tl.list_layers(model)
    assert layers and all(len(info.shape) == 4 for info in layers)
    maps = tl.feature_maps(model, image)
    assert maps.activation.ndim == 4 and maps.strength.shape == (maps.activation.shape[1],)
    dream = tl.dream(model, 3, tl.DreamConfig(steps=3, size=48, scale=0.2))  # random rescaling, another size than the input
    assert dream.image.shape == (1, 3, 48, 48) and 0 <= dream.image.min() and dream.image.max() <= 1
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and model.training == mode


def test_vit_tokens_are_laid_out_on_the_patch_grid(family_weights) -> None:
    run = tl.open_model("test_vit", family_weights("test_vit"))
    net = run.model.net
    h, w = net.patch_embed.grid_size
    tokens = torch.arange(2 * (1 + h * w) * 3, dtype=torch.float).view(2, 1 + h * w, 3)  # (B, class + patches, C)
    grid = as_map(net, tokens, "blocks.0")
    assert grid.shape == (2, 3, h, w)
    assert torch.equal(grid[1, 2, 0, 1], tokens[1, 1 + 1, 2]) and torch.equal(grid[0, 0, 1, 0], tokens[0, 1 + w, 0])  # row-major patches, class token dropped
    assert as_map(net, torch.zeros(2, 1000), "head") is None


def test_vit_gradcam_reaches_the_patches(family_weights) -> None:
    run = tl.open_model("test_vit", family_weights("test_vit"))
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))  # test_vit takes any size in whole patches
    cam = tl.gradcam(run.model, image, target=0)
    assert cam.layer.endswith(".norm1") and cam.coarse.shape == (4, 4) and float(cam.coarse.max()) > 0  # 64 px / 16 px patches
    odd = tl.gradcam(run.model, torch.rand(1, 3, 50, 70), target=0)  # not whole patches: resized to its 160 px inside the model
    assert odd.coarse.shape == run.model.net.patch_embed.grid_size and odd.heatmap.shape == (50, 70)


def test_cli_train_predict_explain_features_dream_on_a_vit(capsys, monkeypatch, family_weights, photo_folder: Path, tmp_path: Path) -> None:
    vit = ["test_vit", "--weights", str(family_weights("test_vit"))]
    photo = make_photo(tmp_path / "cat.jpg", 0, seed=7, size=(64, 48))
    code, out, err = cli(capsys, monkeypatch, "train", photo_folder, "-b", *vit, "--out", tmp_path / "run", "--fp32", "--json")
    assert code == 0, err
    code, out, _ = cli(capsys, monkeypatch, "predict", tmp_path / "run", photo, "--json")
    assert code == 0 and json.loads(out)[0]["top"]
    code, out, err = cli(capsys, monkeypatch, "explain", tmp_path / "run", photo, "--out", tmp_path / "cam.png", "--json")
    assert code == 0, err
    assert json.loads(out)["layer"] == "blocks.5.norm1" and Image.open(tmp_path / "cam.png").mode == "RGB"
    code, out, _ = cli(capsys, monkeypatch, "features", *vit, "--list-layers")
    assert code == 0 and "blocks.5" in out
    code, out, err = cli(capsys, monkeypatch, "features", *vit, photo, "--layer", "blocks.3", "--top", "4", "--out", tmp_path / "f.png")
    assert code == 0 and "blocks.3: 64 channels of 10x10" in out, err
    code, out, err = cli(capsys, monkeypatch, "dream", *vit, "--class", "3", "--steps", "2", "--scale", "0.2", "--out", tmp_path / "d.png", "--json")
    assert code == 0 and json.loads(out)["size"] == [160, 160] and (tmp_path / "d.png").is_file(), err
