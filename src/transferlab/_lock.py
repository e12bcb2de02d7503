"""One writer per folder, across processes: ``writing(path)`` holds a lock file beside ``path``
(``.NAME.lock``) for as long as a process writes it; a second writer fails at once with a one-line
``BusyError`` naming the holder's pid.

The lock is an ``flock`` (``msvcrt.locking`` on Windows) on the open lock file, so the kernel drops it when
its process dies: a lock left by a killed process never blocks anyone. The file holds the holder's pid
(for the message only) and is removed on release; a process that locked a file another one has just
removed notices (the path no longer names the file it locked) and tries again.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BusyError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

_held: dict[Path, int] = {}  # lock files this process holds -> nesting depth (a writer may call another writer)
_guard = threading.Lock()


def lock_path(path: Path | str) -> Path:
    """The lock file of ``path``: a hidden sibling, so replacing the folder itself leaves the lock in place."""
    path = Path(path).absolute()
    return path.with_name(f".{path.name}.lock")


@contextmanager
def writing(path: Path | str, what: str | None = None) -> Iterator[None]:
    """Hold the write lock of ``path`` (a file or folder, existing or not) for the ``with`` block.

    Raises:
        BusyError: another process holds it (the message names ``what``, default the path, and its pid).
    """
    lock = lock_path(path)
    with _guard:
        if lock in _held:  # this process already writes it: nested writers share the lock
            _held[lock] += 1
            fd = None
        else:
            fd = _acquire(lock, what or str(path))
            _held[lock] = 1
    try:
        yield
    finally:
        with _guard:
            _held[lock] -= 1
            if not _held[lock]:
                del _held[lock]
                if fd is not None:
                    lock.unlink(missing_ok=True)  # while still locked: a waiter re-checks the path after locking
                    os.close(fd)  # closing drops the lock


def _acquire(lock: Path, what: str) -> int:
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            holder = _read_pid(fd)
            os.close(fd)
            pid = f" (pid {holder})" if holder else ""
            raise BusyError(f"another transferlab process is writing {what}{pid} — wait for it to finish, or write somewhere else")
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)  # the holder removed this file as we locked it: lock the one now at the path


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode().strip() if hasattr(os, "pread") else ""
    except OSError:
        return ""
    return text if text.isdigit() else ""
