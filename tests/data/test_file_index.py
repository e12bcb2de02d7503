"""The file index: a warm run costs a stat per file, and is never trusted over a changed file."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from transferlab.data import check_dataset, content_hash
from transferlab.data import file_index
from transferlab.data.file_index import FileIndex, file_facts

from ..conftest import make_photo, make_photo_folder
from ..reliability.zoo import CASES

HOUR_NS = 3600 * 10**9


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files ``file_facts`` reads (their names, in order)."""
    seen: list[str] = []
    real = file_index._read

    def counting(path: str, check: bool):
        seen.append(os.path.basename(path))
        return real(path, check)

    monkeypatch.setattr(file_index, "_read", counting)
    return seen


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files are read an hour after they were written (as in real use): none is racy."""
    monkeypatch.setattr(file_index, "_clock", lambda: time.time_ns() + HOUR_NS)


def _photos(tmp_path: Path) -> list[Path]:
    return sorted(make_photo_folder(tmp_path / "photos", per_class=3).rglob("*.jpg"))


def test_an_unchanged_file_is_not_read_again(tmp_path: Path, reads: list[str], later: None) -> None:
    paths = _photos(tmp_path)
    first = file_facts(paths, FileIndex(tmp_path / "cache"))
    assert len(reads) == len(paths) and [f.digest for f in first] == [content_hash(p.read_bytes()) for p in paths]
    reads.clear()
    again = file_facts(paths, FileIndex(tmp_path / "cache"))
    assert reads == [] and again == first


def test_a_changed_file_is_read_again_even_with_its_size_and_mtime_kept(tmp_path: Path, reads: list[str], later: None) -> None:
    paths = _photos(tmp_path)
    file_facts(paths, FileIndex(tmp_path / "cache"))
    resized, rewritten, replaced = paths[0], paths[1], paths[2]
    make_photo(resized, 1, seed=999, size=(40, 40))  # new size
    before = rewritten.stat()
    time.sleep(0.05)  # past the clock tick of the first write: the rewrite's ctime differs
    data = bytearray(rewritten.read_bytes())
    data[-3] ^= 0xFF
    rewritten.write_bytes(bytes(data))  # same size...
    os.utime(rewritten, ns=(before.st_atime_ns, before.st_mtime_ns))  # ...and its mtime put back: ctime still moved
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(paths[3].read_bytes())
    os.utime(copy, ns=(replaced.stat().st_atime_ns, replaced.stat().st_mtime_ns))
    os.replace(copy, replaced)  # another file (inode) under the old name
    reads.clear()
    again = file_facts(paths, FileIndex(tmp_path / "cache"))
    assert sorted(reads) == sorted(p.name for p in (resized, rewritten, replaced))
    assert [f.digest for f in again] == [content_hash(p.read_bytes()) for p in paths]


def test_a_file_changed_within_a_clock_tick_of_its_reading_is_read_again(tmp_path: Path, reads: list[str]) -> None:
    """Racy git: a file rewritten within one tick of the file system's clock can keep its whole stat, so an entry
    whose file changed less than RACY_NS before it was read is never vouched for."""
    photo = make_photo(tmp_path / "photos" / "a" / "x.jpg", 0, seed=1)
    first = file_facts([photo], FileIndex(tmp_path / "cache"))[0]
    before = photo.stat()
    assert FileIndex(tmp_path / "cache").lookup(photo, before) is None  # not vouched for: written just before it was read
    data = bytearray(photo.read_bytes())
    data[-3] ^= 0xFF
    photo.write_bytes(bytes(data))  # same size, and (on a coarse clock) perhaps the same mtime and ctime
    os.utime(photo, ns=(before.st_atime_ns, before.st_mtime_ns))
    reads.clear()
    again = file_facts([photo], FileIndex(tmp_path / "cache"))[0]
    assert reads == ["x.jpg"] and again.digest == content_hash(bytes(data)) != first.digest


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "not json", "another folder's"])
def test_a_damaged_index_is_ignored_and_rebuilt(tmp_path: Path, reads: list[str], later: None, damage: str) -> None:
    paths = _photos(tmp_path)[:3]
    index_root = tmp_path / "cache"
    first = file_facts(paths, FileIndex(index_root))
    (index_file,) = (index_root / "files").iterdir()
    raw = bytearray(index_file.read_bytes())
    if damage == "flipped byte":
        raw[-20] ^= 0x01  # inside a hash: still valid JSON, but the body's digest no longer matches
    elif damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "not json":
        raw = bytearray(b"\x00" * len(raw))
    else:
        head, body = bytes(raw).split(b"\n", 1)
        raw = bytearray(json.dumps({**json.loads(head), "folder": "/elsewhere"}).encode() + b"\n" + body)
    index_file.write_bytes(bytes(raw))
    reads.clear()
    assert file_facts(paths, FileIndex(index_root)) == first and len(reads) == len(paths)
    reads.clear()
    assert file_facts(paths, FileIndex(index_root)) == first and reads == []  # rebuilt


def _summary(ds) -> dict:
    return {"samples": [str(s.path) for s in ds.samples], "skipped": [(str(s.path), s.reason) for s in ds.skipped], "warnings": [(str(w.path), w.reason) for w in ds.warnings]}


def test_check_dataset_reports_every_bad_file_on_a_warm_run_without_reading_the_good_ones(tmp_path: Path, reads: list[str], later: None) -> None:
    root = tmp_path / "data"
    make_photo_folder(root, per_class=4)
    for case in CASES:
        if not case.unprivileged:
            case.make(root / "cat")
    cold = _summary(check_dataset(root, cache_dir=tmp_path / "cache"))
    assert len(reads) >= len(cold["samples"])  # the cold run read every file
    assert len(cold["skipped"]) >= 8  # the zoo's bad files, each with its reason
    reads.clear()
    warm = _summary(check_dataset(root, cache_dir=tmp_path / "cache"))
    assert warm == cold
    read_again = set(reads)
    assert read_again <= {os.path.basename(p) for p, _ in cold["skipped"]}  # only files that cannot be read (links) are tried again
    assert not any(name.startswith(("cat_", "dog_", "fox_")) for name in read_again)


def test_check_dataset_reads_a_bad_file_again_once_it_is_fixed(tmp_path: Path, reads: list[str], later: None) -> None:
    root = make_photo_folder(tmp_path / "data", per_class=3)
    broken = root / "cat" / "cat_0.jpg"
    good = broken.read_bytes()
    broken.write_bytes(good[:200])
    assert [s.path for s in check_dataset(root, cache_dir=tmp_path / "cache").skipped] == [broken]
    assert [s.path for s in check_dataset(root, cache_dir=tmp_path / "cache").skipped] == [broken]  # remembered, still reported
    broken.write_bytes(good)
    assert check_dataset(root, cache_dir=tmp_path / "cache").skipped == []


def _hash_repeatedly(paths: list[str], root: str, rounds: int) -> None:
    file_index._clock = lambda: time.time_ns() + HOUR_NS
    for _ in range(rounds):
        index = FileIndex(root)
        file_facts(paths, index, workers=1)
        index._changed.update(index._folders)  # write every time: the most contention two processes can make
        index.save()


def test_two_processes_sharing_an_index_never_leave_a_partial_one(tmp_path: Path) -> None:
    paths = [str(p) for p in _photos(tmp_path)]
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_hash_repeatedly, args=(paths, str(tmp_path / "cache"), 30)) for _ in range(2)]
    for w in workers:
        w.start()
    loads = 0
    while any(w.is_alive() for w in workers):
        index = FileIndex(tmp_path / "cache")
        for folder in {os.path.dirname(p) for p in paths}:
            if index._file(folder).exists():
                entries = index._load(folder)
                assert entries, "a reader saw a damaged or partial index"
                loads += 1
    for w in workers:
        w.join()
        assert w.exitcode == 0
    assert loads > 0
    assert file_facts(paths, FileIndex(tmp_path / "cache")) == file_facts(paths, None)
