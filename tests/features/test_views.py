"""Extra views of a photo (``features.views``): what each one is, and that their features are cached apart."""

import numpy as np
import pytest
import torch
from PIL import Image

from transferlab.errors import ConfigError
from transferlab.features import FeatureCache, extract_features
from transferlab.features.views import VIEWS, shifted_box, view_names, view_uint8
from transferlab.models.preprocess import Preprocess
from transferlab.run.config import MAX_VIEWS

PRE = Preprocess(input_size=(32, 32), crop_pct=0.8)


def _gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
    return Image.fromarray(x.astype(np.uint8))


def test_the_config_knows_how_many_views_there_are() -> None:
    assert MAX_VIEWS == len(VIEWS) and view_names(True) == VIEWS and view_names(0) == () and view_names(1) == ("flip",)
    with pytest.raises(ConfigError, match="0 to 3"):
        view_names(4)


def test_flip_mirrors_the_plain_view_and_shifts_move_it_within_the_image() -> None:
    image = _gradient(50, 40)
    plain = view_uint8(image, PRE, None)
    assert torch.equal(view_uint8(image, PRE, "flip"), plain.flip(-1))
    left, right = view_uint8(image, PRE, "shift-tl"), view_uint8(image, PRE, "shift-br")
    assert left.float().mean() < plain.float().mean() < right.float().mean()  # brighter to the right: the crop moved
    for sign in (-1, 1):
        left_, top, right_, bottom = shifted_box(PRE, 50, 40, sign)
        assert 0 <= left_ and 0 <= top and right_ <= 50 and bottom <= 40  # inside the image
        box = PRE.crop_box(50, 40)
        assert right_ - left_ == pytest.approx(box[2] - box[0]) and bottom - top == pytest.approx(box[3] - box[1])  # same scale


def test_a_crop_without_margin_shifts_only_where_the_image_is_longer() -> None:
    full = Preprocess(input_size=(32, 32), crop_pct=1.0)
    assert shifted_box(full, 40, 40, 1) == full.crop_box(40, 40)
    left_, top, _, _ = shifted_box(full, 60, 40, 1)
    assert left_ > full.crop_box(60, 40)[0] and top == 0


def test_each_view_is_cached_apart_from_the_plain_features(photo_folder, tiny_weights, tmp_path) -> None:
    from transferlab.models import create_backbone

    from ..conftest import TINY

    model = create_backbone(TINY, tiny_weights).model
    paths = sorted(photo_folder.rglob("*.jpg"))[:6]
    cache = FeatureCache(tmp_path, {"k": "v"})
    plain = extract_features(model, paths, cache=cache)
    flipped = extract_features(model, paths, cache=cache, view="flip")
    assert flipped.computed == 6 and len(cache) == 6  # the view's rows went to its own cache
    again = extract_features(model, paths, cache=cache, view="flip")
    assert again.computed == 0 and torch.equal(again.features, flipped.features)
    assert not torch.equal(plain.features, flipped.features)
