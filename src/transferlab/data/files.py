"""Turning the paths a user types into image files."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import DataError
from .decode import IMAGE_EXTENSIONS, is_ignored, is_image_name


def expand_image_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files as given; folders expanded (recursively, sorted) to their image files, hidden ones left out.

    Raises:
        DataError: a path does not exist, or a folder holds no images.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            found = sorted(
                f for f in p.rglob("*")
                if is_image_name(f) and f.is_file() and not any(is_ignored(part) for part in f.relative_to(p).parts)
            )
            if not found:
                raise DataError(f"no image files in folder {str(p)!r} — expected {', '.join(IMAGE_EXTENSIONS)} files")
            files.extend(found)
        else:
            raise DataError(f"{str(p)!r} does not exist — check the path")
    return files
