"""Layer hooks, layer listing and feature maps on the tiny timm model."""

from __future__ import annotations

import pytest
import torch

import transferlab as tl
from transferlab.errors import ConfigError
from transferlab.inspect.feature_maps import feature_grid, feature_maps
from transferlab.inspect.hooks import capture, last_conv_layer, list_layers, stage_layer


def _hook_count(net: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in net.modules())


def test_list_layers_gives_shapes_that_match_a_real_forward_pass(tiny_run: tl.Run) -> None:
    layers = list_layers(tiny_run.model)
    names = [layer.name for layer in layers]
    assert {"conv_stem", "blocks.2", "blocks.2.0", "conv_head"} <= set(names)
    assert names.index("blocks.1") < names.index("blocks.2") < names.index("conv_head")  # in running order
    h, w = tiny_run.model.preprocess.input_size
    with capture(tiny_run.model.net, names) as acts:
        tiny_run.model.eval()(torch.rand(1, 3, h, w))
    for layer in layers:
        assert layer.shape == tuple(acts[layer.name].shape) and len(layer.shape) == 4
    stages = {layer.stage: layer.name for layer in layers if layer.stage}
    assert stages == {k: stage_layer(tiny_run.model, k) for k in range(1, 6)}
    assert _hook_count(tiny_run.model.net) == 0


def test_capture_removes_its_hooks_even_when_the_block_raises(tiny_run: tl.Run) -> None:
    net = tiny_run.model.net
    with pytest.raises(RuntimeError, match="boom"):
        with capture(net, ["blocks.1", "conv_head"]):
            assert _hook_count(net) == 2
            raise RuntimeError("boom")
    assert _hook_count(net) == 0


def test_unknown_layer_and_stage_are_clear_errors(tiny_run: tl.Run) -> None:
    with pytest.raises(ConfigError, match=r"unknown layer 'block.2' — did you mean 'blocks.2'"):
        with capture(tiny_run.model.net, ["block.2"]):
            pass
    with pytest.raises(ConfigError, match=r"stage 9 is out of range — this backbone has stages 1..5"):
        stage_layer(tiny_run.model, 9)
    image = torch.rand(1, 3, 32, 32)
    with pytest.raises(ConfigError, match="got both"):
        feature_maps(tiny_run.model, image, layer="blocks.2", stage=2)
    with pytest.raises(ConfigError, match="to output a \\(B, C, H, W\\) map"):
        feature_maps(tiny_run.model, image, layer="classifier")


def test_feature_maps_rank_channels_and_draw_a_grid(tiny_run: tl.Run) -> None:
    image = torch.rand(1, 3, 64, 64)
    maps = feature_maps(tiny_run.model, image, stage=2)
    assert maps.layer == "blocks.1" and maps.activation.shape == (1, 24, 16, 16)
    assert torch.allclose(maps.strength, maps.activation[0].mean(dim=(1, 2)))
    top = maps.top(5)
    assert len(top) == 5 and all(maps.strength[a] >= maps.strength[b] for a, b in zip(top, top[1:]))
    grid = feature_grid(maps, top=5, tile=40)
    assert grid.mode == "RGB" and grid.width >= 3 * 40
    assert feature_maps(tiny_run.model, image).layer == stage_layer(tiny_run.model, 3)  # default: middle stage
    assert last_conv_layer(tiny_run.model) == "bn2"
