"""The network a user trains or predicts with: normalisation + timm backbone + linear head.

Every public entry point takes pixels in [0, 1] (float) or [0, 255] (uint8); the mean/std of the
backbone's preprocessing record are applied inside, so attacks and visualisations never re-implement it.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from ..errors import BackboneError
from .preprocess import Preprocess
from .state import eval_mode


class Normalize(nn.Module):
    """Maps uint8 or [0, 1] float images to the backbone's normalised input."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return (x - self.mean) / self.std


def fit_input_size(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` resized (bilinear, differentiably) to the network's own input size when the network cannot take
    ``x``'s: a timm ViT with a fixed image size, or one with a dynamic size that ``x`` does not divide into
    patches. So dreams of any size, Grad-CAM's probes and photos at their own size work with ViTs as with CNNs.
    """
    embed = getattr(net, "patch_embed", None)
    if embed is None or getattr(embed, "img_size", None) is None:
        return x
    size, patch = tuple(x.shape[-2:]), tuple(getattr(embed, "patch_size", (1, 1)))
    fixed = getattr(embed, "strict_img_size", False)
    undivided = not getattr(embed, "dynamic_img_pad", False) and any(s % p for s, p in zip(size, patch))
    if size == tuple(embed.img_size) or not (fixed or undivided):
        return x
    return nn.functional.interpolate(x, size=tuple(embed.img_size), mode="bilinear", align_corners=False, antialias=True)


class FeatureExtractor(nn.Module):
    """Pixels -> pre-logit features (what the feature cache stores): the network's own pooled pre-logits
    (a ``models.combined.CombinedNet`` gives its members' features, concatenated)."""

    def __init__(self, normalize: Normalize, net: nn.Module) -> None:
        super().__init__()
        self.normalize = normalize
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(fit_input_size(self.net, self.normalize(x))), pre_logits=True)


class ImageClassifier(nn.Module):
    """A timm network with its preprocessing and class names; ``forward`` gives logits.

    Shape:
        input (B, 3, H, W) in [0, 1] float or uint8; output (B, num_classes) logits.
    """

    def __init__(self, net: nn.Module, preprocess: Preprocess, classes: list[str]) -> None:
        super().__init__()
        self.net = net
        self._dim: int | None = None  # width of ``features``, measured on first use
        self.preprocess = preprocess
        self.classes = list(classes)
        self.normalize = Normalize(preprocess.mean, preprocess.std)
        self.head_dropout = 0.0  # on the pooled features while training (fine-tuning sets it)

    @property
    def head(self) -> nn.Module:
        return self.net.get_classifier()

    @property
    def num_features(self) -> int:
        return int(self.net.num_features)

    @property
    def feature_dim(self) -> int:
        """Width of ``features`` (measured once on a blank image: timm's ``num_features`` is not the pre-logit
        width of every family, e.g. MobileNetV3)."""
        if self._dim is None:
            probe = torch.zeros(1, 3, *self.preprocess.input_size)
            with torch.no_grad(), eval_mode(self.net):
                self._dim = int(self.feature_extractor()(probe.to(next(self.net.parameters()).device)).shape[1])
        return self._dim

    def feature_extractor(self) -> FeatureExtractor:
        return FeatureExtractor(self.normalize, self.net)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_extractor()(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(nn.functional.dropout(self.features(x), self.head_dropout, self.training))

    def set_head(self, weight: torch.Tensor, bias: torch.Tensor, classes: list[str]) -> None:
        """Replace the classifier by a linear head for ``classes`` holding the given weights.

        Shape:
            weight (C, D), bias (C,) with C = len(classes), D = num_features.
        """
        home = next(self.net.parameters())  # the new head joins the network on its device, in its dtype
        self.net.reset_classifier(len(classes))
        head = self.head.to(home.device, home.dtype)
        if not isinstance(head, nn.Linear):
            raise BackboneError(f"expected a linear classifier on {type(self.net).__name__}, got {type(head).__name__}")
        with torch.no_grad():
            head.weight.copy_(weight)
            head.bias.copy_(bias)
        self.classes = list(classes)

    def backbone_fingerprint(self) -> str:
        """sha256 over the backbone's tensors (head excluded): identifies the features it computes."""
        head_ids = {id(p) for p in self.head.parameters()}
        digest = hashlib.sha256()
        for name, tensor in sorted(self.net.state_dict(keep_vars=True).items()):
            if id(tensor) in head_ids:
                continue
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:32]
