"""Crash-safe file writes shared by the cache and run directories."""

from __future__ import annotations

import errno
import json
import os
import uuid
from pathlib import Path
from typing import Any

from .errors import StorageError

# What a full disk (or quota, or file-size limit) looks like to write/fsync/close.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file + rename, so readers see the old file or the new one, never a part.

    Raises:
        StorageError: the disk (or quota) is full; the temporary file is removed and ``path`` is untouched.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in _NO_SPACE:
            raise StorageError(
                f"no space left to write {path} ({err.strerror}; {len(data):,} bytes needed) — free some space or "
                "write elsewhere (--out, --cache-dir or $TRANSFERLAB_CACHE); nothing partial was left behind"
            ) from err
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def display_path(path: Path | str) -> str:
    """A path printable on any terminal: bytes that are not UTF-8 appear as ``\\xe9`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
