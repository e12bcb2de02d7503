"""Several backbones, or one backbone's last stages, seen as one timm-like network.

``efficientnet_lite0+efficientnet_lite1`` concatenates the members' pooled features; ``--features multi``
adds the global average of each member's last ``MULTI_STAGES`` feature stages. ``CombinedNet`` answers the
calls the rest of transferlab makes of a timm network (``forward_features``, ``forward_head``,
``get_classifier``, ``reset_classifier``, ``group_matcher``, ``feature_info``), so a combination trains,
fine-tunes, saves, loads, exports, serves and is explained like any single backbone.

Members see one input: the largest member's crop. Each member takes it resized (bilinear) to its own input
size, in proportion when the input has another size (dreams, Grad-CAM probes), and normalised its own way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import BackboneError
from .classifier import Normalize, fit_input_size
from .defaults import DEFAULT_FEATURES, FEATURE_MODES
from .state import eval_mode

MULTI_STAGES = 3  # ``multi``: how many of the last feature stages (timm's ``feature_info``) are pooled too


def member_features(net: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
    """One member's features of its normalised input: pooled pre-logits, after the pooled last stages in ``multi``.

    ``multi`` for EfficientNet-Lite0: the means of its 40-, 112- and 320-channel stages (1/8, 1/16, 1/32 of the
    input), then its 1280 pooled pre-logits; for a ViT, the means of the patch tokens of its last 3 blocks.

    Shape:
        x (B, 3, H, W) -> (B, D).
    """
    x = fit_input_size(net, x)
    if mode == DEFAULT_FEATURES:
        return net.forward_head(net.forward_features(x), pre_logits=True)
    if not hasattr(net, "forward_intermediates"):
        raise BackboneError(f"--features multi needs timm's forward_intermediates, which {type(net).__name__} lacks — use --features pooled")
    final, stages = net.forward_intermediates(x, indices=MULTI_STAGES, norm=False, stop_early=False)
    pooled = [s.float().mean((2, 3)) for s in stages]  # each (B, C_i, H_i, W_i) -> (B, C_i)
    return torch.cat([*pooled, net.forward_head(final, pre_logits=True).float()], dim=1)


class CombinedNet(nn.Module):
    """Members' features concatenated (in the order given), then one linear classifier over them.

    Shape:
        input (B, 3, H, W) in [0, 1]; ``forward_features`` (B, num_features); output (B, num_classes).
    """

    def __init__(
        self,
        members: Sequence[nn.Module],
        archs: Sequence[str],
        norms: Sequence[tuple[Sequence[float], Sequence[float]]],
        sizes: Sequence[tuple[int, int]],
        features: str = DEFAULT_FEATURES,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if features not in FEATURE_MODES:
            raise BackboneError(f"expected features in {', '.join(FEATURE_MODES)}, got {features!r}")
        if not members or not len(members) == len(archs) == len(norms) == len(sizes):
            raise BackboneError("expected one arch, normalisation and input size per member network")
        for net in members:
            net.reset_classifier(0)  # the members' own heads (ImageNet's) are not part of the combination
        self.members = nn.ModuleList(members)
        self.norms = nn.ModuleList(Normalize(tuple(m), tuple(s)) for m, s in norms)
        self.archs = list(archs)
        self.sizes = [(int(h), int(w)) for h, w in sizes]
        self.input_size = max(self.sizes)
        self.features = features
        self.dims = self._measure_dims()
        self.num_features = sum(self.dims)
        self.num_classes = 0
        self.classifier: nn.Module = nn.Identity()
        self.reset_classifier(num_classes)
        self.pretrained_cfg = self.default_cfg = {"architecture": self.architecture, "classifier": "classifier"}

    @property
    def architecture(self) -> str:
        """``combined-pooled:tf_efficientnet_lite0+tf_efficientnet_lite1``: what the features are, for cache keys."""
        return f"combined-{self.features}:" + "+".join(self.archs)

    def _measure_dims(self) -> list[int]:
        blank, dims = torch.zeros(1, 3, *self.input_size), []
        for i, net in enumerate(self.members):
            with torch.no_grad(), eval_mode(net):
                dims.append(int(member_features(net, self._member_input(blank, i), self.features).shape[1]))
        return dims

    def _member_input(self, x: torch.Tensor, i: int) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])  # plain ints while tracing too: the exported graph has one input size
        size = (round(h * self.sizes[i][0] / self.input_size[0]), round(w * self.sizes[i][1] / self.input_size[1]))
        if size != (h, w):  # no antialias: the ONNX exporter lacks it, and members differ in size by < 20 %
            x = nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.norms[i](x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([member_features(net, self._member_input(x, i), self.features).float() for i, net in enumerate(self.members)], dim=1)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: Any = None) -> None:
        self.num_classes = int(num_classes)
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """The first member's stages, named inside this network: Grad-CAM's and ``features``' default layers."""
        info = getattr(self.members[0], "feature_info", None) or []
        return [{**f, "module": f"members.0.{f['module']}"} for f in info if isinstance(f, dict) and "module" in f]

    def group_matcher(self, coarse: bool = False) -> Callable[[str], int]:
        """Each member's own layer groups, counted from its end, so ``--unfreeze K`` trains the last K stages
        of every member (and layer decay decays each member from its top); the classifier joins the last group."""
        from timm.models import group_modules, group_parameters

        order: dict[str, int] = {}
        for i, net in enumerate(self.members):
            matcher = net.group_matcher(coarse=coarse)
            for grouping in (group_modules(net, matcher), group_parameters(net, matcher)):
                last = max(grouping)
                order.update({f"members.{i}.{name}": gid - last - 1 for gid, names in grouping.items() for name in names})
        return lambda name: order.get(name, -1)

    def no_weight_decay(self) -> set[str]:
        return {f"members.{i}.{n}" for i, net in enumerate(self.members) if hasattr(net, "no_weight_decay") for n in net.no_weight_decay()}

    def describe(self) -> dict[str, Any]:
        """What ``model.json`` needs to rebuild this network (``from_description``)."""
        return {
            "features": self.features,
            "members": [
                {"arch": a, "mean": list(n.mean.flatten().tolist()), "std": list(n.std.flatten().tolist()), "input_size": list(s)}
                for a, n, s in zip(self.archs, self.norms, self.sizes)
            ],
        }

    @classmethod
    def from_description(cls, description: dict[str, Any], num_classes: int) -> CombinedNet:
        """An untrained network of the described shape (``describe``), for loading saved weights into."""
        import timm

        members = description["members"]
        nets = [timm.create_model(m["arch"], pretrained=False, num_classes=0) for m in members]
        return cls(
            nets, [m["arch"] for m in members], [(m["mean"], m["std"]) for m in members], [tuple(m["input_size"]) for m in members],
            description.get("features", DEFAULT_FEATURES), num_classes,
        )
