"""Fixtures for the inspect tests: the tiny timm model as an ImageNet-head Run, and a hand-made network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import transferlab as tl
from transferlab.models import ImageClassifier, Preprocess

from ..conftest import TINY, make_photo_folder, train_tiny


@pytest.fixture
def tiny_run(tiny_weights: Path) -> tl.Run:
    """The 0.36 M-parameter timm test model with its 1000-class head (fresh per test: tests may change it)."""
    return tl.open_model(TINY, tiny_weights)


@pytest.fixture(scope="session")
def colour_run(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path) -> tl.Run:
    """The tiny model with a probe head trained to tell three colours of photo apart ("cat", "dog", "fox").

    Its class scores depend strongly on the pixels, unlike the random 1000-class head, so dreams and
    Grad-CAM have something to find. Session-wide: tests must not change it.
    """
    root = make_photo_folder(tmp_path_factory.mktemp("colours"), per_class=12, size=(40, 40))
    return train_tiny(root, tiny_weights, val_frac=0.2, test_frac=0.2)


class RedDetector(nn.Module):
    """A hand-made "network": class 0 = how red the image is, class 1 = how blue, class 2 = constant.

    Its only spatial map ("conv") is the red-minus-blue channel, so Grad-CAM of class 0 must peak
    where the red is.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).view(2, 3, 1, 1))
        self.act = nn.ReLU()
        self.classifier = nn.Linear(2, 3)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.tensor([[4.0, -4.0], [-4.0, 4.0], [0.0, 0.0]]))
            self.classifier.bias.zero_()
        self.num_features = 2

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))
        return pooled if pre_logits else self.classifier(pooled)


@pytest.fixture
def red_detector() -> ImageClassifier:
    pre = Preprocess(input_size=(32, 32), crop_pct=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return ImageClassifier(RedDetector(), pre, ["red thing", "blue thing", "grey thing"])
