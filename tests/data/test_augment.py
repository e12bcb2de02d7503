import pytest
import torch
from PIL import Image

from transferlab.data.augment import AUGMENTATIONS, train_size, train_transform
from transferlab.errors import ConfigError
from transferlab.models import Preprocess

PRE = Preprocess(input_size=(40, 48))


def _photo() -> Image.Image:
    g = torch.linspace(0, 255, 90 * 70).reshape(70, 90).to(torch.uint8)
    return Image.fromarray(torch.stack([g, g.flip(1), g.T.reshape(70, 90)], -1).numpy())


@pytest.mark.parametrize("preset", AUGMENTATIONS)
def test_every_preset_gives_uint8_images_at_the_backbone_input_size(preset: str) -> None:
    out = train_transform(PRE, preset)(_photo())
    assert out.dtype == torch.uint8 and out.shape == (3, 40, 48)


def test_none_is_the_evaluation_view_and_the_others_vary_reproducibly() -> None:
    assert torch.equal(train_transform(PRE, "none")(_photo()), PRE.to_uint8(_photo()))
    for preset in ("light", "strong"):
        t = train_transform(PRE, preset)
        torch.manual_seed(0)
        a, b = t(_photo()), t(_photo())
        torch.manual_seed(0)
        assert not torch.equal(a, b) and torch.equal(t(_photo()), a)


def test_unknown_preset_is_named() -> None:
    with pytest.raises(ConfigError, match="expected augmentation in"):
        train_transform(PRE, "heavy")


def test_random_crops_train_below_the_evaluation_size_and_none_stays_at_it() -> None:
    pre = Preprocess(input_size=(224, 224))
    assert train_size((224, 224), 0.875) == (192, 192) and train_size((260, 300), 0.875) == (224, 256)
    assert train_size((40, 48), 1.0) == (40, 48)
    assert train_transform(pre, "light", 0.875)(_photo()).shape == (3, 192, 192)
    assert train_transform(pre, "strong", 0.875)(_photo()).shape == (3, 192, 192)
    assert train_transform(pre, "none", 0.875)(_photo()).shape == (3, 224, 224)
    with pytest.raises(ConfigError, match="training size ratio"):
        train_size((224, 224), 0.0)
