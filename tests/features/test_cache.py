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


def test_rows_can_be_read_as_float16_one_shard_at_a_time(tmp_path: Path) -> None:
    """A large collection asks for float16: each shard's rows are converted as it is read (copies, so the
    float32 shard is not kept alive by views into it)."""
    cache = FeatureCache(tmp_path, KEY)
    feats = torch.randn(4, 8)
    cache.put(["a", "b"], feats[:2])
    cache.put(["c", "d"], feats[2:])
    got = FeatureCache(tmp_path, KEY).get(["d", "a"], torch.float16)
    assert {h: t.dtype for h, t in got.items()} == {"a": torch.float16, "d": torch.float16}
    torch.testing.assert_close(got["a"], feats[0].half())
    torch.testing.assert_close(got["d"], feats[3].half())
    assert got["a"].untyped_storage().nbytes() == 2 * 8  # its own copy of one shard's wanted rows, not the shard


def test_compaction_writes_shards_of_bounded_size_and_leaves_full_ones(tmp_path: Path, monkeypatch) -> None:
    from transferlab.features import cache as cache_module

    monkeypatch.setattr(cache_module, "SHARD_ROWS", 4)
    cache = FeatureCache(tmp_path, KEY)
    cache.put([f"f{i}" for i in range(4)], torch.zeros(4, 2))  # already full: never rewritten
    full = next(cache.dir.glob("*.safetensors"))
    for i in range(9):
        cache.put([f"h{i}"], torch.full((1, 2), float(i)))
    cache.compact()
    shards = list(cache.dir.glob("*.safetensors"))
    assert full in shards and len(shards) == 1 + 3  # 9 single rows merged as 4 + 4 + 1
    got = cache.get([f"h{i}" for i in range(9)] + [f"f{i}" for i in range(4)])
    assert len(got) == 13 and all(got[f"h{i}"][0].item() == i for i in range(9))
