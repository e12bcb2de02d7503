from pathlib import Path

import torch

from transferlab.features import FeatureCache

KEY = {"weights": "abc", "arch": "x", "preprocess": "p", "precision": "fp32", "version": "features-v1"}


def test_put_then_get_returns_the_same_rows(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, KEY)
    feats = torch.randn(3, 8)
    cache.put(["a", "b", "c"], feats)
    got = FeatureCache(tmp_path, KEY).get(["c", "a", "zz"])  # a new instance: read from disk
    assert set(got) == {"a", "c"}
    assert torch.equal(got["a"], feats[0]) and torch.equal(got["c"], feats[2])


def test_any_key_change_is_a_separate_cache(tmp_path: Path) -> None:
    FeatureCache(tmp_path, KEY).put(["a"], torch.ones(1, 4))
    for field in KEY:
        other = FeatureCache(tmp_path, {**KEY, field: KEY[field] + "-changed"})
        assert other.get(["a"]) == {}, field


def test_half_written_and_damaged_shards_are_never_used(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, KEY)
    cache.put(["good"], torch.ones(1, 4))
    # what a killed writer leaves: a temporary file, and (on a broken disk) a truncated shard
    (cache.dir / ".deadbeef.safetensors.tmp").write_bytes(b"\x00" * 10)
    shard = next(cache.dir.glob("*.safetensors"))
    (cache.dir / "truncated.safetensors").write_bytes(shard.read_bytes()[:-7])
    (cache.dir / "garbage.safetensors").write_bytes(b"not a safetensors file")
    got = FeatureCache(tmp_path, KEY).get(["good", "other"])
    assert list(got) == ["good"] and torch.equal(got["good"], torch.ones(4))


def test_many_shards_are_compacted_without_losing_entries(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, KEY)
    for i in range(70):
        cache.put([f"h{i}"], torch.full((1, 2), float(i)))
    got = cache.get([f"h{i}" for i in range(70)])
    assert len(list(cache.dir.glob("*.safetensors"))) == 1
    assert len(got) == 70 and all(got[f"h{i}"][0].item() == i for i in range(70))
    assert len(cache.get([f"h{i}" for i in range(70)])) == 70
