"""The run folder on disk, and the only code that reads or writes one: ``model.safetensors`` (the network's
tensors), ``model.json`` (the record, classes and preprocessing), for a kNN or Mahalanobis "none of these"
score ``confidence.safetensors``, and ``digests.json`` (the SHA-256 of each of those, written last). Nothing
is ever unpickled, so a run from anyone loads safely, offline.

Integrity: ``read_run`` checks every file it reads against ``digests.json``; a byte changed on disk is a
``DamagedRunError`` naming the file, never different predictions. Runs written before digests existed have
no ``digests.json`` and load as they always did (their ``model.json`` does not name one).

One folder, one run: ``new_run`` (what ``train`` writes through) holds the folder's lock and, where the
folder already holds a run, has the new run written into a hidden sibling that then replaces the folder
whole, so nothing of the old run (its curves, evaluations, checkpoints) stays beside the new model. Files
are read through one handle on the folder, so a reader sees the old run or the new one, never a mix.
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._io import atomic_write_bytes
from .._lock import writing
from ..errors import DamagedRunError, RunError
from ..models.classifier import ImageClassifier
from ..models.confidence import TENSORS_FILE, Confidence
from ..models.saving import build_classifier, describe_network, network_state
from .record import RunRecord

FORMAT = "transferlab-run"
FORMAT_VERSION = 2  # 2: may hold a ``network`` (several backbones, or multi-stage features); 1 otherwise
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
DIGESTS_FILE = "digests.json"  # a file of its own, written last, so that it covers model.json too
DIGEST = "sha256"  # 12 ms for a 14 MB model (2.5 times faster than blake2b on CPUs with SHA instructions)
_RUN_FILES = (META_FILE, DIGESTS_FILE, "checkpoint.pt")  # any of them: the folder holds a run (perhaps a killed one)


def read_meta(directory: Path | str) -> dict[str, Any]:
    """``model.json`` of a run folder, checked to be one this version reads (and, with digests, the one written).

    Raises:
        RunError: not a run folder, damaged, or written by a newer transferlab.
    """
    with _Folder(directory) as folder:
        meta = _meta(folder)
        folder.verify()
        return meta


def read_run(directory: Path | str) -> tuple[ImageClassifier, RunRecord, Confidence]:
    """The classifier, record and confidence of a run folder (no network, no pickle), each file checked
    against ``digests.json`` where the run has one.

    Raises:
        RunError: not a run, incomplete or damaged (``DamagedRunError``: a file differs from its digest).
    """
    for _ in range(2):  # a run replaced while it was read: its files went with it, so read the new one, whole
        with _Folder(directory) as folder:
            try:
                return _read_all(folder)
            except RunError:
                if not folder.replaced():
                    raise
    with _Folder(directory) as folder:
        return _read_all(folder)


def _read_all(folder: _Folder) -> tuple[ImageClassifier, RunRecord, Confidence]:
    meta = _meta(folder)
    record = RunRecord.from_dict(meta)
    tensors = _read_tensors(folder, WEIGHTS_FILE, "the model")
    model = build_classifier(record.backbone.arch, meta["classes"], meta["preprocess"], tensors, meta.get("network"), repr(str(folder.path)))
    confidence = _read_confidence(folder, record)
    folder.verify()
    return model, record, confidence


def write_run(directory: Path | str, model: ImageClassifier, record: RunRecord, confidence: Confidence) -> Path:
    """Write the run's files into ``directory`` and ``digests.json`` last. A folder that already holds a run
    (``calibrate``, a threshold stored) is updated by a copy swapped in whole, its other files kept.

    Raises:
        BusyError: another process is writing the folder.
    """
    from safetensors.torch import save

    directory = Path(directory)
    described = describe_network(model)
    meta = {"format": FORMAT, "format_version": 2 if "network" in described else 1, **record.to_dict(), **described, "digests": DIGESTS_FILE}  # version 1 readers can load the rest
    files = {WEIGHTS_FILE: save(network_state(model)), META_FILE: (json.dumps(meta, indent=2) + "\n").encode()}
    if confidence.tensors:
        files[TENSORS_FILE] = save({k: v.contiguous() for k, v in confidence.tensors.items()})
    with writing(directory, f"the run folder {directory}"):
        if not (directory / META_FILE).is_file():
            _write_files(directory, files)
            return directory
        work = _sibling(directory, "new")
        rewritten = {*files, TENSORS_FILE, DIGESTS_FILE}
        shutil.copytree(directory, work, copy_function=_link_or_copy, ignore=lambda d, names: [n for n in names if n in rewritten] if Path(d) == directory else [])
        try:
            _write_files(work, files)
            _swap(work, directory)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # the previous version of the files after the swap
    return directory


@contextmanager
def new_run(directory: Path | str | None, *, continuing: bool = False) -> Iterator[Path | None]:
    """The folder to train into for a run that will live in ``directory``, locked for the ``with`` block.

    Where ``directory`` already holds a run (and this is not that run ``continuing``: a resume), the new run
    is written into a hidden sibling that replaces ``directory`` whole when the block ends having written a
    run; on an error it is removed and the old run stays. Otherwise the run is written in place. A folder
    that holds no run is never emptied: the run's files are added to it.

    Raises:
        BusyError: another process is writing ``directory``.
    """
    if directory is None:
        yield None
        return
    final = Path(directory)
    with writing(final, f"the run folder {final}"):
        for kind in ("new", "old"):  # what a killed writer left: nobody else writes now
            for leftover in final.parent.glob(f".{glob.escape(final.name)}.{kind}-*"):
                shutil.rmtree(leftover, ignore_errors=True)
        if continuing or not any((final / name).exists() for name in _RUN_FILES):
            yield final
            return
        work = _sibling(final, "new")
        work.mkdir()
        try:
            yield work
        finally:
            if (work / DIGESTS_FILE).is_file():  # a whole run was written: it replaces the old one
                _swap(work, final)
            shutil.rmtree(work, ignore_errors=True)  # the old run after a swap; the unfinished one otherwise


# -- writing -------------------------------------------------------------------------------------------
def _write_files(directory: Path, files: dict[str, bytes]) -> None:
    """Each file atomically, then their digests: a folder with ``digests.json`` holds the whole run."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DIGESTS_FILE).unlink(missing_ok=True)
    (directory / TENSORS_FILE).unlink(missing_ok=True)  # a confidence file the run no longer needs
    for name, data in files.items():
        atomic_write_bytes(directory / name, data)
    digests = {"algorithm": DIGEST, "files": {name: hashlib.new(DIGEST, data).hexdigest() for name, data in files.items()}}
    atomic_write_bytes(directory / DIGESTS_FILE, (json.dumps(digests, indent=2) + "\n").encode())


def _sibling(directory: Path, kind: str) -> Path:
    return directory.with_name(f".{directory.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # the files kept are never written in place (every write is a rename), so sharing them is safe
    except OSError:
        shutil.copy2(src, dst)


def _swap(work: Path, final: Path) -> None:
    """``work`` becomes ``final`` and ``final``'s old content goes to ``work``: in one step where the system
    can (Linux's renameat2 exchange), else by two renames (a reader in between finds no run and says so)."""
    if not final.exists():
        os.rename(work, final)
        return
    if _exchange(work, final):
        return
    old = _sibling(final, "old")
    os.rename(final, old)
    os.rename(work, final)
    os.rename(old, work)


def _exchange(a: Path, b: Path) -> bool:
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError, TypeError):  # not glibc (macOS, Windows, musl without it)
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0  # EINVAL etc.: fall back


# -- reading -------------------------------------------------------------------------------------------
class _Folder:
    """A run folder's files read through one handle on the folder (a swap mid-read cannot mix two runs).
    Each file's digest is taken as it is read and compared with ``digests.json`` by ``verify``, once the
    files have been parsed: a file that does not parse keeps its own message, one that parses but was
    changed is named by its digest."""

    def __init__(self, directory: Path | str) -> None:
        self.path = Path(directory)
        self.fd: int | None = None
        self.digests: dict[str, str] | None = None  # as recorded; None: a run from before digests
        self.read_digests: dict[str, str] = {}  # as read

    def __enter__(self) -> _Folder:
        if os.open in os.supports_dir_fd and self.path.is_dir():
            try:
                self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                self.fd = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)

    def replaced(self) -> bool:
        """Whether the path names another folder now than when this one was opened (a run swapped in)."""
        try:
            return self.fd is not None and not os.path.samestat(os.fstat(self.fd), os.stat(self.path))
        except OSError:
            return True

    def read(self, name: str) -> bytes | None:
        """The bytes of ``name``, or None if absent."""
        try:
            fd = os.open(name, os.O_RDONLY, dir_fd=self.fd) if self.fd is not None else os.open(self.path / name, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        with open(fd, "rb") as f:
            data = f.read()
        self.read_digests[name] = hashlib.new(DIGEST, data).hexdigest()
        return data

    def load_digests(self) -> None:
        data = self.read(DIGESTS_FILE)
        if data is None:
            raise RunError(f"{str(self.path)!r} has no {DIGESTS_FILE}, which its {META_FILE} names — the run is incomplete (still being written, or copied in part); copy the whole run folder or retrain")
        try:
            found = json.loads(data)
            self.digests = {str(k): str(v) for k, v in found["files"].items()} if found.get("algorithm") == DIGEST else None
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise DamagedRunError(f"{self.path / DIGESTS_FILE} is damaged ({err}) — restore it from a copy of the run, or retrain") from err
        if self.digests is None:
            raise RunError(f"{self.path / DIGESTS_FILE} uses a digest this transferlab does not know — upgrade transferlab")

    def verify(self) -> None:
        """Every file read so far is the one the run wrote (a run from before digests: nothing to check)."""
        for name, got in self.read_digests.items():
            expected = (self.digests or {}).get(name)
            if expected is not None and got != expected:
                raise DamagedRunError(f"{self.path / name} is not the file this run wrote (its {DIGEST} differs from {DIGESTS_FILE}) — the run is damaged: restore the file from a copy of the run, or retrain")


def _meta(folder: _Folder) -> dict[str, Any]:
    meta_path = folder.path / META_FILE
    text = folder.read(META_FILE)
    if text is None:
        raise RunError(f"{str(folder.path)!r} is not a transferlab run (no {META_FILE}) — pass a folder written by `transferlab train`")
    try:
        meta = _checked(json.loads(text), meta_path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"{meta_path} is not valid JSON ({err}) — the run is damaged; retrain it") from err
    if meta.get("digests") == DIGESTS_FILE or (folder.path / DIGESTS_FILE).exists():
        folder.load_digests()
    return meta


def _checked(meta: Any, meta_path: Path) -> dict[str, Any]:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RunError(f"expected format {FORMAT!r} in {meta_path}, got {meta.get('format') if isinstance(meta, dict) else meta!r}")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise RunError(f"{meta_path} has format version {meta['format_version']}, newer than this transferlab reads — upgrade transferlab")
    for key in ("classes", "preprocess", "backbone"):
        if key not in meta:
            raise RunError(f"{meta_path} lacks the field {key!r} — the run is damaged; retrain it")
    return meta


def _read_confidence(folder: _Folder, record: RunRecord) -> Confidence:
    if record.confidence and (tensors := _read_tensors(folder, TENSORS_FILE, "the 'none of these' score", required=False)) is not None:
        return Confidence.from_record(record.confidence, tensors)
    if (record.confidence or {}).get("method") in ("knn", "mahalanobis"):
        raise RunError(f"{str(folder.path)!r} lacks {TENSORS_FILE}, which its 'none of these' score needs — copy the whole run folder, or calibrate it again (`transferlab calibrate RUN DATA`)")
    return Confidence.from_record(record.confidence)


def _read_tensors(folder: _Folder, name: str, what: str, required: bool = True) -> dict[str, Any] | None:
    from safetensors import SafetensorError
    from safetensors.torch import load

    data = folder.read(name)
    if data is None:
        if not required:
            return None
        raise RunError(f"{str(folder.path)!r} has no {name} — the run is incomplete; retrain it")
    try:
        return load(data)
    except (SafetensorError, OSError) as err:  # not safetensors (a pickle?), truncated, unreadable
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise RunError(f"cannot load {what} in {str(folder.path)!r}: {name} is not a whole safetensors file ({first}) — the run is damaged; retrain it") from err
