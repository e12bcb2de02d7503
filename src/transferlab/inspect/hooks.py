"""Forward hooks as context managers: record what named layers output, and always remove the hooks.

Layer names are the dotted module names inside the timm network (``model.net``), e.g. ``blocks.2`` or
``conv_head`` for EfficientNet, ``layer3`` for a ResNet; ``list_layers`` shows them with output shapes.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..models import ImageClassifier
from ..models.combined import CombinedNet
from ..models.state import device_of, eval_mode


def get_layer(net: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; an unknown name raises ConfigError suggesting close ones."""
    modules = dict(net.named_modules())
    if name in modules and name:
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=4, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "see `transferlab features MODEL IMAGE --list-layers`"
    raise ConfigError(f"unknown layer {name!r} — {hint}")


@contextmanager
def capture(net: nn.Module, names: Sequence[str], *, detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of the named layers of ``net`` during forward passes inside the block.

    The dict yielded is filled on each forward (the last one wins). ``detach=False`` keeps the graph, so
    gradients can be taken with respect to the recorded activations (Grad-CAM). The hooks are removed
    on leaving the block, also when it raises.

    Example:
        with capture(model.net, ["blocks.2"]) as acts:
            model(image)
        acts["blocks.2"].shape  # (1, 40, 28, 28)
    """
    layers = {name: get_layer(net, name) for name in names}
    recorded: dict[str, torch.Tensor] = {}
    handles = []

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if isinstance(output, torch.Tensor):
                recorded[name] = output.detach() if detach else output

        return hook

    try:
        for name, layer in layers.items():
            handles.append(layer.register_forward_hook(hook_for(name)))
        yield recorded
    finally:
        for handle in handles:
            handle.remove()


def owner(net: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The network a layer belongs to and its name there: in a combination (``members.1.blocks.3``), the
    member (``blocks.3`` of member 1); elsewhere ``net`` and ``name`` as they are."""
    if isinstance(net, CombinedNet) and name.startswith("members."):
        index, _, rest = name.removeprefix("members.").partition(".")
        if index.isdigit() and int(index) < len(net.members):
            return net.members[int(index)], rest
    return net, name


def as_map(net: nn.Module, output: torch.Tensor, name: str = "") -> torch.Tensor | None:
    """A layer's output as a (B, C, h, w) map: 4-D maps as they are; a vision transformer's (B, N, C) tokens
    with the prefix (class, register) tokens dropped and the patch tokens laid out on the patch grid
    (differentiably: Grad-CAM takes gradients through it); None for anything else (pooled vectors, logits).

    ``name`` is the layer's: a ViT built with ``dynamic_img_size`` embeds patches channels-last, (B, h, w, C).
    """
    net, name = owner(net, name)
    embed = getattr(net, "patch_embed", None)
    if output.ndim == 4:
        channels_last = name == "patch_embed" and str(getattr(embed, "output_fmt", "")).endswith("NHWC")
        return output.permute(0, 3, 1, 2) if channels_last else output
    grid = getattr(embed, "grid_size", None)
    if output.ndim != 3 or not grid:
        return None
    b, n, c = output.shape
    patches = n - int(getattr(net, "num_prefix_tokens", 0)) if name != "patch_embed" else n
    h, w = grid if patches == grid[0] * grid[1] else (math.isqrt(patches),) * 2  # other input sizes: square grids
    if h * w != patches or patches <= 0:
        return None
    return output[:, n - patches :].transpose(1, 2).reshape(b, c, h, w)  # (B, N, C) -> (B, C, h, w)


def token_net(net: nn.Module) -> bool:
    """A vision transformer: its blocks output tokens, not maps."""
    return getattr(getattr(net, "patch_embed", None), "grid_size", None) is not None and isinstance(getattr(net, "blocks", None), nn.Sequential)


@dataclass(frozen=True)
class LayerInfo:
    """A layer whose output is an image-like activation map."""

    name: str
    kind: str  # module class name
    shape: tuple[int, ...]  # output shape for one input image at the model's size, (1, C, h, w)
    stage: int | None = None  # K when ``--stage K`` names this layer


def _browsable(net: nn.Module) -> list[str]:
    """Top-level parts of ``net`` and, recursively, the members of its containers (stages, blocks); each
    member's, named inside the combination, for several backbones."""
    if isinstance(net, CombinedNet):
        return [f"members.{i}.{name}" for i, member in enumerate(net.members) for name in _browsable(member)]
    names: list[str] = []

    def walk(module: nn.Module, prefix: str) -> None:
        for child_name, child in module.named_children():
            name = f"{prefix}{child_name}"
            names.append(name)
            if isinstance(child, (nn.Sequential, nn.ModuleList)):
                walk(child, name + ".")

    walk(net, "")
    return names


@torch.no_grad()
def list_layers(model: ImageClassifier, size: tuple[int, int] | None = None) -> list[LayerInfo]:
    """The layers worth looking at, in the order they run, with their output shapes for one image at
    the model's input size: the network's top-level parts and the members of its containers (for
    EfficientNet ``conv_stem``, ``blocks.2``, ``blocks.2.1``, ``conv_head``...), where the output is a map
    (4-D, or a vision transformer's tokens shown on the patch grid, ``as_map``).
    Any module name works in ``capture`` and ``feature_maps``; these are the ones to start from.
    """
    names = _browsable(model.net)
    order: list[str] = []
    with capture(model.net, names) as acts:
        hooks = [model.net.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: order.append(n)) for n in names]
        try:
            forward_eval(model, torch.zeros(1, 3, *(size or model.preprocess.input_size)))
        finally:
            for h in hooks:
                h.remove()
    seen = dict.fromkeys(order)  # a module called twice keeps its first position
    stages = {f["module"]: k for k, f in enumerate(getattr(model.net, "feature_info", None) or [], 1)}
    maps = {n: as_map(model.net, acts[n], n) for n in seen if n in acts}
    return [LayerInfo(n, type(model.net.get_submodule(n)).__name__, tuple(m.shape), stages.get(n)) for n, m in maps.items() if m is not None]


def stage_layer(model: ImageClassifier, stage: int) -> str:
    """Name of the ``stage``-th feature level of the backbone (1 = finest, e.g. stride 2; timm's feature_info)."""
    info = getattr(model.net, "feature_info", None)
    modules = [f["module"] for f in info] if info else []
    if not modules:
        raise ConfigError(f"{type(model.net).__name__} does not describe its stages — pick a layer with --layer NAME")
    if not 1 <= stage <= len(modules):
        raise ConfigError(f"stage {stage} is out of range — this backbone has stages 1..{len(modules)} ({', '.join(modules)})")
    return modules[stage - 1]


def default_stage(model: ImageClassifier) -> int:
    """The middle feature level: detailed enough to see the photo in, deep enough to show parts."""
    info = getattr(model.net, "feature_info", None) or [None]
    return math.ceil(len(info) / 2)


def last_conv_layer(model: ImageClassifier) -> str:
    """The last top-level part of the network whose output is still a spatial map (Grad-CAM's layer).

    For a vision transformer, the first norm of its last block: the patch tokens there reach the class
    token through the last attention, while after it only the class token (or the pooled tokens) counts.
    """
    prefix = "members.0." if isinstance(model.net, CombinedNet) else ""  # a combination's first member
    net = model.net.members[0] if prefix else model.net
    if token_net(net):
        return f"{prefix}blocks.{len(net.blocks) - 1}.norm1"
    maps = [layer for layer in list_layers(model, size=(64, 64)) if layer.name.startswith(prefix) and "." not in layer.name.removeprefix(prefix)]
    if not maps:
        raise ConfigError(f"{type(model.net).__name__} has no layer with a spatial output — pick one with --layer NAME")
    return maps[-1].name


def forward_eval(model: ImageClassifier, image: torch.Tensor) -> torch.Tensor:
    """``model``'s logits for ``image`` (moved to the model's device), in eval mode; the model's own mode after."""
    with eval_mode(model):
        return model(image.to(device_of(model)))
