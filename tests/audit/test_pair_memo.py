"""A warm near-copy search decodes no pair it has compared before, and a damaged memo is only ignored."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from transferlab.audit import duplicates
from transferlab.audit.duplicates import copies_in
from transferlab.audit.pair_memo import PairMemo


def _photos(tmp_path: Path) -> tuple[list[Path], list[str]]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    other = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    paths = [tmp_path / "q.png", tmp_path / "copy.jpg", tmp_path / "other.png"]
    Image.fromarray(base).save(paths[0])
    Image.fromarray(base).save(paths[1], quality=80)  # a re-encoded copy
    Image.fromarray(other).save(paths[2])
    return paths, ["hq", "hcopy", "hother"]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    decoded: list[int] = []
    real = duplicates.verify

    def verify(paths, pairs, workers=4):
        pairs = list(pairs)
        decoded.append(len(pairs))
        return real(paths, pairs, workers)

    monkeypatch.setattr(duplicates, "verify", verify)
    return decoded


def test_a_second_search_reads_the_verdicts_and_finds_the_same_copies(tmp_path: Path, counted: list[int]) -> None:
    paths, hashes = _photos(tmp_path)
    features = torch.nn.functional.normalize(torch.ones(3, 8) + torch.arange(3)[:, None] * 1e-3 * torch.arange(8), dim=1)  # all three look alike
    search = lambda memo: copies_in(paths[:1], hashes[:1], features[:1], paths[1:], hashes[1:], features[1:], memo=memo)  # noqa: E731
    cold = search(PairMemo(tmp_path / "cache"))
    assert cold == {0: (0, "near")} and counted == [2]  # both candidates decoded
    warm = search(PairMemo(tmp_path / "cache"))  # a new process: read from disk
    assert warm == cold and counted == [2, 0]  # nothing decoded
    assert search(None) == cold and counted == [2, 0, 2]  # without a memo, as before


def test_a_damaged_or_foreign_memo_is_ignored(tmp_path: Path, counted: list[int]) -> None:
    paths, hashes = _photos(tmp_path)
    features = torch.nn.functional.normalize(torch.ones(3, 8), dim=1)
    memo_file = tmp_path / "cache" / "pairs.json"
    copies_in(paths[:1], hashes[:1], features[:1], paths[1:], hashes[1:], features[1:], memo=PairMemo(tmp_path / "cache"))
    data = memo_file.read_bytes()
    memo_file.write_bytes(data.replace(b"\n{", b"\n{\"hq:hother\":1.0,", 1))  # a verdict forged: the digest no longer matches
    found = copies_in(paths[:1], hashes[:1], features[:1], paths[1:], hashes[1:], features[1:], memo=PairMemo(tmp_path / "cache"))
    assert found == {0: (0, "near")} and counted[-1] == 2  # decoded afresh, the forged verdict unused
    memo = PairMemo(tmp_path / "cache")
    assert memo.get("hother", "hq") is not None and memo.get("hother", "hq") < 0.5  # rebuilt from the real pixels
