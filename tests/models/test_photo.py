"""PhotoClassifier: the evaluation crop and resize as a differentiable layer that agrees with Pillow."""

import numpy as np
import pytest
import torch
from PIL import Image

from transferlab.models import Preprocess
from transferlab.models.photo import PhotoClassifier, photo_tensor


class _Identity(torch.nn.Module):
    def __init__(self, preprocess: Preprocess) -> None:
        super().__init__()
        self.preprocess, self.classes = preprocess, ["a"]
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("size", [(300, 400), (400, 300), (245, 280), (224, 224), (100, 90)])
def test_resize_matches_the_pillow_path_predict_takes(size: tuple[int, int], interpolation: str) -> None:
    pre = Preprocess(input_size=(64, 64), interpolation=interpolation, crop_pct=0.875)
    rng = np.random.default_rng(sum(size))
    smooth = np.kron(rng.integers(0, 256, (size[0] // 4 + 1, size[1] // 4 + 1, 3)), np.ones((4, 4, 1)))[: size[0], : size[1]]
    image = Image.fromarray((0.5 * smooth + 0.5 * rng.integers(0, 256, (*size, 3))).astype(np.uint8))
    ours = PhotoClassifier(_Identity(pre)).resize(photo_tensor(image))[0]
    levels = ((ours - pre.to_tensor(image)).abs() * 255).round()
    assert levels.max() <= 1 and (levels > 0).float().mean() < 0.01  # Pillow's fixed point, now and then


def test_gradients_reach_every_pixel_the_crop_keeps() -> None:
    pre = Preprocess(input_size=(32, 32), crop_pct=0.875)
    net = PhotoClassifier(_Identity(pre))
    x = torch.rand(1, 3, 50, 70, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad[..., 25, 35].abs().sum() > 0  # the centre
    assert x.grad[..., 25, 0].abs().sum() == 0  # a border column the centre crop cuts away
