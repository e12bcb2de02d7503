from pathlib import Path

import pytest
import torch

from transferlab.models.state import eval_mode

from transferlab.features import FeatureCache, cache_key, extract_features, load_image, pick_runtime
from transferlab.models import create_backbone

from ..conftest import TINY, make_photo


@pytest.fixture
def tiny(tiny_weights: Path):
    return create_backbone(TINY, weights=tiny_weights).model


def _cache(model, tmp_path: Path, precision: str = "fp32") -> FeatureCache:
    return FeatureCache(tmp_path / "cache", cache_key(model, pick_runtime(precision=precision)))


def test_features_equal_the_models_own_forward(tiny, photo_folder: Path) -> None:
    paths = sorted(photo_folder.rglob("*.jpg"))[:5]
    ex = extract_features(tiny, paths, runtime=pick_runtime(precision="fp32"), batch_size=2)
    x = torch.stack([load_image(p, tiny.preprocess) for p in paths])
    with torch.no_grad(), eval_mode(tiny):  # extraction is inference: the model's eval forward
        expected = tiny.features(x)
    assert ex.ok == list(range(5)) and ex.features.shape == (5, tiny.num_features)
    assert torch.allclose(ex.features, expected, atol=1e-4, rtol=1e-4)


def test_bf16_fast_path_stays_close_to_fp32(tiny, photo_folder: Path) -> None:
    paths = sorted(photo_folder.rglob("*.jpg"))[:6]
    fp32 = extract_features(tiny, paths, runtime=pick_runtime(precision="fp32")).features
    bf16 = extract_features(tiny, paths, runtime=pick_runtime(precision="bf16")).features
    cos = torch.nn.functional.cosine_similarity(fp32, bf16, dim=1)
    assert cos.min() > 0.99


def test_cache_is_reused_and_only_new_images_are_computed(tiny, photo_folder: Path, tmp_path: Path) -> None:
    paths = sorted(photo_folder.rglob("*.jpg"))
    cache = _cache(tiny, tmp_path)
    first = extract_features(tiny, paths, cache=cache, runtime=pick_runtime(precision="fp32"))
    assert first.computed == len(paths)
    again = extract_features(tiny, paths, cache=cache, runtime=pick_runtime(precision="fp32"))
    assert again.computed == 0 and torch.equal(again.features, first.features)
    new = make_photo(photo_folder / "cat" / "new.jpg", 0, seed=999)
    more = extract_features(tiny, [*paths, new], cache=cache, runtime=pick_runtime(precision="fp32"))
    assert more.computed == 1 and torch.equal(more.features[:-1], first.features)


def test_same_bytes_under_two_names_are_computed_once(tiny, photo_folder: Path, tmp_path: Path) -> None:
    src = next(photo_folder.rglob("*.jpg"))
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(src.read_bytes())
    ex = extract_features(tiny, [src, copy], cache=_cache(tiny, tmp_path))
    assert ex.computed == 1 and torch.equal(ex.features[0], ex.features[1])


def test_undecodable_files_are_reported_not_raised(tiny, photo_folder: Path, tmp_path: Path) -> None:
    good = sorted(photo_folder.rglob("*.jpg"))[:3]
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good[0].read_bytes()[:300])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not an image")
    ex = extract_features(tiny, [good[0], truncated, good[1], junk, good[2]], cache=_cache(tiny, tmp_path))
    assert ex.ok == [0, 2, 4]
    assert set(ex.failed) == {truncated, junk} and all(ex.failed.values())
    # a failure is not cached as a success: the next run reports it again
    again = extract_features(tiny, [truncated], cache=_cache(tiny, tmp_path))
    assert again.ok == [] and truncated in again.failed


def test_different_preprocessing_or_precision_does_not_reuse_features(tiny, tmp_path: Path) -> None:
    from dataclasses import replace

    base = cache_key(tiny, pick_runtime(precision="fp32"))
    assert base != cache_key(tiny, pick_runtime(precision="bf16"))
    tiny.preprocess = replace(tiny.preprocess, crop_pct=1.0)
    assert base != cache_key(tiny, pick_runtime(precision="fp32"))
