"""What is known about image files by their stat, kept between runs: git's index for photo folders.

A file whose size, mtime, ctime and inode are those it had when it was read keeps its content hash (and,
once ``check_dataset`` decoded it, its verdict) without being read again: a warm run costs one ``stat`` per
file. Any difference and the file is read afresh. The index is advisory: one that is damaged (its body
carries a digest), written by another version, or about another folder is ignored and rebuilt, never
trusted over the file.

Racy files (git's "racy git" problem): a file changed twice within one tick of the file system's clock
keeps its stat. An entry is therefore trusted only when the file's last change (mtime and ctime) came at
least ``RACY_NS`` before the moment it was read; a fresher file is read again next time. What a stat cannot
see: bytes rewritten with size, mtime, ctime and inode all kept (a raw write to the device, or the clock
set back), as for git.

Layout: ``ROOT/files/<digest of the folder's path>.json``, one per folder of photos: a header line (version,
folder, decoder, digest of the body) and a JSON body ``{name: [size, mtime_ns, ctime_ns, inode, hash,
verdict]}``; verdict ``null`` = never fully decoded, ``""`` = decodes, else the reason it does not. Written
atomically; two processes may share it (the last writer wins, a reader sees a whole file or the old one).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_write_bytes
from .._types import CountProgress as Progress
from . import decode
from .duplicates import content_hash

VERSION = "file-index-v1"
RACY_NS = 2_000_000_000  # FAT's 2 s mtime ticks are the coarsest in common use; ext4's are a jiffy
_clock = time.time_ns  # when files are read (a test moves it to pretend they were written long before)


def default_index_root() -> Path:
    """The feature cache's root (``$TRANSFERLAB_CACHE``, else ``~/.cache/transferlab``): indexes live in ``files/``."""
    env = os.environ.get("TRANSFERLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "transferlab"


def _decoder() -> str:
    """What a remembered verdict depends on: the decoding library and the refusal threshold."""
    from PIL import __version__ as pillow

    return f"Pillow {pillow}; max_pixels {decode.MAX_PIXELS}"


@dataclass(frozen=True)
class Facts:
    """What one file is: its content hash (None: unreadable) and why it cannot be used (None: it can)."""

    digest: str | None
    problem: str | None


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class FileIndex:
    """Per-folder indexes under ``root/files``; load on first use, ``save`` writes the folders that changed."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.dir = (Path(root).expanduser() if root is not None else default_index_root()) / "files"
        self.decoder = _decoder()
        self._folders: dict[str, dict[str, list]] = {}
        self._changed: set[str] = set()

    def _file(self, folder: str) -> Path:
        return self.dir / (hashlib.blake2b(os.fsencode(folder), digest_size=12).hexdigest() + ".json")

    def _folder(self, folder: str) -> dict[str, list]:
        if folder not in self._folders:
            self._folders[folder] = self._load(folder)
        return self._folders[folder]

    def _load(self, folder: str) -> dict[str, list]:
        """The folder's entries, or none when the file is missing, damaged, or not this version's."""
        try:
            head, body = self._file(folder).read_bytes().split(b"\n", 1)
            header = json.loads(head)
            if header.get("version") != VERSION or header.get("folder") != folder or header.get("digest") != hashlib.blake2b(body, digest_size=16).hexdigest():
                return {}
            entries = json.loads(body)
        except (OSError, ValueError, AttributeError):
            return {}
        if not isinstance(entries, dict):
            return {}
        if header.get("decoder") != self.decoder:  # the hashes hold; the verdicts were another decoder's
            for entry in entries.values():
                if isinstance(entry, list) and len(entry) == 6:
                    entry[5] = None
        return entries

    def lookup(self, path: Path | str, st: os.stat_result) -> tuple[str, str | None] | None:
        """(hash, verdict) remembered for ``path`` with exactly this stat, else None."""
        entry = self._folder(os.path.dirname(path)).get(os.path.basename(path))
        if type(entry) is list and len(entry) == 6 and entry[:4] == _stamp(st) and isinstance(entry[4], str) and (entry[5] is None or isinstance(entry[5], str)):
            return entry[4], entry[5]
        return None

    def remember(self, path: Path | str, st: os.stat_result, read_ns: int, digest: str, verdict: str | None) -> None:
        """Keep what was read from ``path`` (stat taken before reading, at or after ``read_ns``), unless racy."""
        folder, name = os.path.dirname(path), os.path.basename(path)
        entries = self._folder(folder)
        if max(st.st_mtime_ns, st.st_ctime_ns) >= read_ns - RACY_NS:
            if entries.pop(name, None) is not None:  # changed too recently to vouch for: read it again next time
                self._changed.add(folder)
            return
        entries[name] = [*_stamp(st), digest, verdict]
        self._changed.add(folder)

    def save(self) -> None:
        """Write every folder index that changed (entries of files no longer there are dropped)."""
        for folder in sorted(self._changed):
            entries = self._folders[folder]
            try:
                present = set(os.listdir(folder))
                entries = {name: entry for name, entry in entries.items() if name in present}
            except OSError:
                pass
            body = json.dumps(entries, separators=(",", ":")).encode()
            header = {"version": VERSION, "folder": folder, "decoder": self.decoder, "digest": hashlib.blake2b(body, digest_size=16).hexdigest()}
            self.dir.mkdir(parents=True, exist_ok=True)
            try:
                atomic_write_bytes(self._file(folder), json.dumps(header).encode() + b"\n" + body)
            except OSError:
                pass  # advisory: a cache that cannot be written costs the next run a re-read, nothing else
        self._changed.clear()


def _read(path: str, check: bool) -> tuple[os.stat_result | None, str | None, str | None]:
    """(stat of the bytes read, their content hash, why the file cannot be used) for one file."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())  # the stat of exactly what is read: a rename in between cannot mismatch them
            data = f.read()
    except OSError as err:
        return None, None, decode.os_reason(err, Path(path))
    if not check:
        return st, content_hash(data), None
    try:
        decode.open_rgb(data)
    except decode.BadImageError as err:
        return st, content_hash(data), err.reason
    return st, content_hash(data), ""


def file_facts(
    paths: Sequence[Path | str], index: FileIndex | None = None, *, check: bool = False, workers: int | None = None, progress: Progress | None = None
) -> list[Facts]:
    """Content hash of each of ``paths`` (and with ``check``, whether it fully decodes), in order.

    Files ``index`` knows with the same stat are not read; the others are read in ``workers`` threads
    (hashing and Pillow release the GIL) and remembered, and ``index`` is saved. Never raises for a file:
    an unreadable one has ``digest`` None and the reason in ``problem``. ``progress`` gets (done, total)
    once the known files are counted, then after each file read.
    """
    read_ns = _clock()  # before any stat: entries are vouched for against the earliest moment
    names = [os.path.abspath(p) for p in paths]
    facts: list[Facts | None] = [None] * len(names)
    todo: list[int] = []
    for i, name in enumerate(names):
        known = _known(index, name, check) if index is not None else None
        if known is None:
            todo.append(i)
        else:
            facts[i] = known
    if progress is not None:
        progress(len(names) - len(todo), len(names))
    with ThreadPoolExecutor(workers or min(16, 2 * (os.cpu_count() or 1))) as pool:
        for done, (i, (st, digest, problem)) in enumerate(zip(todo, pool.map(lambda i: _read(names[i], check), todo)), len(names) - len(todo) + 1):
            facts[i] = Facts(digest, problem or None)
            if progress is not None:
                progress(done, len(names))
            if index is not None and st is not None and digest is not None:
                previous = index.lookup(names[i], st)
                index.remember(names[i], st, read_ns, digest, problem if check else previous[1] if previous else None)
    if index is not None and todo:
        index.save()
    return facts  # type: ignore[return-value]


def _known(index: FileIndex, name: str, check: bool) -> Facts | None:
    try:
        st = os.stat(name)
    except OSError:
        return None  # read it, to report the reason as a read would
    known = index.lookup(name, st)
    if known is None or (check and known[1] is None):
        return None
    return Facts(known[0], (known[1] or None) if check else None)
