import numpy as np
import pytest
import timm
from PIL import Image
from timm.data import create_transform, resolve_data_config

from transferlab.models import Preprocess


@pytest.mark.parametrize("arch", ["tf_efficientnet_lite0", "resnet50", "vit_small_patch16_224"])
@pytest.mark.parametrize("size", [(500, 375), (300, 420), (224, 224)])
def test_box_resize_matches_timms_eval_transform(arch: str, size: tuple[int, int]) -> None:
    # Our one-step box resize must give what timm's Resize + CenterCrop give (up to resampling noise).
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    pre = Preprocess.from_timm(model)
    cfg = resolve_data_config(model=model)
    rng = np.random.default_rng(0)
    smooth = rng.integers(0, 255, (size[1] // 20 + 1, size[0] // 20 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(smooth).resize(size, Image.Resampling.BILINEAR)  # photo-like: no pixel-level noise
    ours = pre.to_uint8(image).float() / 255
    ref = create_transform(**{**cfg, "mean": (0, 0, 0), "std": (1, 1, 1)})(image)
    assert ours.shape == ref.shape == (3, *pre.input_size)
    assert (ours - ref).abs().mean() < 0.01


def test_record_round_trips_through_json_dict() -> None:
    pre = Preprocess.from_timm(timm.create_model("tf_efficientnet_lite2", pretrained=False))
    assert Preprocess.from_dict(pre.to_dict()) == pre
    assert pre.input_size == (260, 260) and pre.mean == (0.5, 0.5, 0.5)


def test_key_changes_with_any_field() -> None:
    pre = Preprocess(input_size=(224, 224))
    assert pre.key() != Preprocess(input_size=(224, 224), crop_pct=0.9).key()
    assert pre.key() != Preprocess(input_size=(224, 224), interpolation="bilinear").key()
