"""Fixtures for attacks: a tiny seeded classifier on 32-px images and a batch of 8-bit images."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import transferlab as tl
from transferlab.models import ImageClassifier, Preprocess

from ..conftest import TINY, make_photo_folder, train_tiny

CLASSES = ["cat", "dog", "fox"]


def tiny_classifier(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), seed: int = 0) -> ImageClassifier:
    import timm

    torch.manual_seed(seed)
    net = timm.create_model(TINY, num_classes=len(CLASSES))
    with torch.no_grad():
        net.get_classifier().weight.mul_(50)  # logits of a trained model's size (~1), not ~0.01 at random init
    return ImageClassifier(net, Preprocess(input_size=(32, 32), mean=mean, std=std), CLASSES).eval()


def grid_images(n: int = 8, seed: int = 0, size: int = 32) -> torch.Tensor:
    """Random images on the 8-bit grid (as decoded photos are), including pure black and white pixels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g).float() / 255
    x[:, :, 0, 0], x[:, :, 0, 1] = 0.0, 1.0  # the [0, 1] clamp must hold at the edges
    return x


@pytest.fixture
def model() -> ImageClassifier:
    return tiny_classifier()


@pytest.fixture
def images() -> torch.Tensor:
    return grid_images()


@pytest.fixture(autouse=True)
def _one_thread():
    """32-px images gain nothing from intra-op threads, and on a shared CPU the thread barriers cost 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def pet_photos(tmp_path_factory: pytest.TempPathFactory):
    """3 classes x 6 photos, folder-per-class (session-wide: the tiny run below trains on it once)."""
    return make_photo_folder(tmp_path_factory.mktemp("pets"), per_class=6)


@pytest.fixture(scope="session")
def tiny_run(pet_photos, tiny_weights, tmp_path_factory: pytest.TempPathFactory):
    """A probe run of the tiny backbone on ``pet_photos``, saved to a folder."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_tiny(pet_photos, tiny_weights, tmp_path_factory.mktemp("run") / "run", val_frac=0.2, test_frac=0.3)
    finally:
        torch.set_num_threads(before)


def with_threshold(run: tl.Run, threshold: float | None) -> tl.Run:
    """A fresh copy of the saved ``run`` whose "none of these" threshold is ``threshold`` (None: rejects nothing)."""
    copy = tl.load(run.directory)  # the shared run keeps its own threshold
    copy.confidence = dataclasses.replace(copy.confidence, method=copy.confidence.method or "msp", threshold=threshold)
    return copy
