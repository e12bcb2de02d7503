import pytest

from transferlab.errors import ConfigError
from transferlab.models import imagenet_classes, resolve_class

PETS = ["Abyssinian", "Bengal", "american_bulldog", "British_Shorthair"]


def test_exact_and_loose_names_resolve():
    assert resolve_class(PETS, "Bengal") == 1
    assert resolve_class(PETS, "bengal") == 1
    assert resolve_class(PETS, "American Bulldog") == 2
    assert resolve_class(PETS, "british") == 3
    assert resolve_class(PETS, "2") == 2


def test_imagenet_names_resolve_by_word():
    classes = imagenet_classes()
    assert classes[resolve_class(classes, "siamese")] == "Siamese cat"
    assert resolve_class(classes, "tabby cat") == 281
    assert classes[resolve_class(classes, "goldfish")] == "goldfish"


def test_typo_is_forgiven_when_only_one_name_is_close():
    assert resolve_class(PETS, "Abysinian") == 0


def test_ambiguous_name_lists_the_candidates():
    with pytest.raises(ConfigError, match="ambiguous.*Siamese cat.*give the full name") as err:
        resolve_class(imagenet_classes(), "cat")
    assert "Persian cat" in str(err.value)


def test_unknown_name_and_bad_index_are_user_errors():
    with pytest.raises(ConfigError, match="unknown class 'zebra'"):
        resolve_class(PETS, "zebra")
    with pytest.raises(ConfigError, match="out of range"):
        resolve_class(PETS, 7)


def test_top_k_rows_are_the_shared_label_index_prob_shape() -> None:
    import numpy as np
    import torch

    from transferlab.models.classes import top_k

    classes = ["a", "b", "c"]
    rows = top_k(np.array([0.2, 0.5, 0.3]), classes, k=5)
    assert [r["label"] for r in rows] == ["b", "c", "a"] and [r["index"] for r in rows] == [1, 2, 0]  # k capped at C
    assert top_k(torch.tensor([0.123456789, 0.8, 0.076543211]), classes, k=1, decimals=3) == [{"label": "b", "index": 1, "prob": 0.8}]
