"""Dataset downloads from the official URLs, verified by checksum, resumable, extracted safely.

Each archive is downloaded to ``DEST/.<name>-downloads/<file>.part`` (an interrupted download continues
from where it stopped, with an HTTP Range request), verified, then every archive is extracted into a
hidden staging folder that is renamed to ``DEST/<name>`` only when complete: a failed or corrupt
download never leaves a dataset that looks whole. Archives are checked member by member before anything
is written: absolute paths, ``..``, links leading outside and device files are refused.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._types import CountProgress as Progress
from ..errors import DataError, StorageError

ATTEMPTS = 3  # connection drops resumed within one call before giving up (the next call resumes too)
_RETRY = {408, 429, 500, 502, 503, 504}  # HTTP statuses worth another attempt
PETIMAGES_URL = "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
PETIMAGES_SHA256 = "b7974bd00a84a99921f36ee4403f089853777b5ae8d151c76a86e64900334af9"  # as TFDS records it


@dataclass(frozen=True)
class Resource:
    """One archive: where it is and the checksum it must have (``md5:…`` or ``sha256:…``; bare hex by length)."""

    url: str
    checksum: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0]

    @property
    def algorithm(self) -> tuple[str, str]:
        """(hashlib name, expected hex digest)."""
        name, _, digest = self.checksum.rpartition(":")
        name = name or {32: "md5", 64: "sha256"}.get(len(digest), "")
        if name not in ("md5", "sha256"):
            raise DataError(f"expected an md5 or sha256 checksum for {self.url}, got {self.checksum!r}")
        return name, digest.lower()


def oxford_resources() -> tuple[Resource, ...]:
    """The Oxford-IIIT Pet images and annotations archives, with torchvision's URLs and MD5s."""
    from torchvision.datasets import OxfordIIITPet

    return tuple(Resource(url, f"md5:{md5}") for url, md5 in OxfordIIITPet._RESOURCES)


def petimages_resources() -> tuple[Resource, ...]:
    """Microsoft's Cats and Dogs archive (PetImages/Cat, PetImages/Dog; some files in it are broken)."""
    return (Resource(PETIMAGES_URL, f"sha256:{PETIMAGES_SHA256}"),)


DATASETS: dict[str, Callable[[], tuple[Resource, ...]]] = {"oxford-iiit-pet": oxford_resources, "petimages": petimages_resources}
_COMPLETE = {"oxford-iiit-pet": ("images", "annotations"), "petimages": ("PetImages/Cat", "PetImages/Dog")}


def get_dataset(
    name: str,
    dest: Path | str = "data",
    resources: Sequence[Resource | tuple[str, str]] | None = None,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Download, verify and extract a dataset into ``dest/<name>``; returns that folder (skips if present).

    Args:
        name: one of ``DATASETS`` (``oxford-iiit-pet``, ``petimages``).
        dest: parent folder.
        resources: archives overriding the official ones (mirrors, tests): ``Resource`` or (url, checksum).
        progress: called with (file name, bytes so far, total bytes or 0).

    Raises:
        DataError: unknown name, network failure, checksum mismatch or an unsafe archive (one sentence).
        StorageError: the disk filled up (a partial download is kept and resumed next time).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    dest = Path(dest).expanduser()
    target = dest / name
    if all((target / part).is_dir() for part in _COMPLETE[name]):
        return target
    if target.exists():
        raise DataError(f"{target} exists but is not a complete {name} download — move it away and retry")
    archives = [r if isinstance(r, Resource) else Resource(*r) for r in (resources or DATASETS[name]())]
    downloads = dest / f".{name}-downloads"  # kept between attempts: finished archives and partial ones
    downloads.mkdir(parents=True, exist_ok=True)
    try:
        for resource in archives:
            cb = (lambda done, total, f=resource.filename: progress(f, done, total)) if progress else None
            fetch(resource, downloads / resource.filename, cb)
    finally:
        if not any(downloads.iterdir()):
            downloads.rmdir()  # nothing fetched: leave no trace
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest))
    try:
        for resource in archives:
            safe_extract(downloads / resource.filename, staging)
        missing = [part for part in _COMPLETE[name] if not (staging / part).is_dir()]
        if missing:
            raise DataError(f"the {name} archives hold no {', '.join(missing)} folder — check the URLs (a mirror of another dataset?)")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(downloads, ignore_errors=True)
    return target


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(resource: Resource, path: Path, progress: Progress | None = None, timeout: float = 60.0) -> Path:
    """Download ``resource`` to ``path`` and verify it; a partial ``path.part`` is continued, not restarted.

    Raises:
        DataError: the server or network failed ``ATTEMPTS`` times, or the checksum is wrong (the bad
            file is deleted so the next attempt starts clean).
        StorageError: the disk is full.
    """
    algorithm, expected = resource.algorithm
    if path.is_file() and file_digest(path, algorithm) == expected:
        return path
    part = path.with_name(path.name + ".part")
    last: Exception | None = None
    for _ in range(ATTEMPTS):
        try:
            _download(resource.url, part, progress, timeout)
            break
        except (OSError, http.client.HTTPException, ValueError) as err:  # URLError is an OSError; ValueError: bad URL
            if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageError(
                    f"no space left to download {resource.filename} into {path.parent} — free some space and retry "
                    "(the part already downloaded is kept)"
                ) from err
            if isinstance(err, ValueError) or (isinstance(err, urllib.error.HTTPError) and err.code not in _RETRY):
                raise DataError(f"could not download {resource.filename} from {resource.url} ({_describe(err)}) — check the URL") from err
            last = err
    else:
        raise DataError(
            f"could not download {resource.filename} from {resource.url} ({_describe(last)}) — check your connection and "
            "retry (the download continues where it stopped), or download the archives by hand and pass DATA=path"
        ) from last
    got = file_digest(part, algorithm)
    if got != expected:
        part.unlink(missing_ok=True)
        raise DataError(
            f"{resource.filename} from {resource.url} has {algorithm} {got}, expected {expected} — the download was "
            "corrupted or the file changed on the server; retry, or check the URL"
        )
    os.replace(part, path)
    return path


def _download(url: str, part: Path, progress: Progress | None, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (a Range request when ``part`` is not empty)."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http(s) URLs of our own table or the caller's)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to fetch: the part is whole (the checksum decides)
            return
        raise
    with response:
        if offset and response.status != 206:  # the server ignored the range: start over
            offset = 0
        total = offset + int(response.headers.get("Content-Length") or 0)
        with open(part, "ab" if offset else "wb") as f:
            done = offset
            for block in iter(lambda: response.read(1 << 20), b""):
                f.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if total > offset and done < total:
            raise ConnectionError(f"connection closed after {done:,} of {total:,} bytes")


def _describe(err: Exception | None) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return f"{type(err).__name__}: {err}" if err else "no response"


# -- extraction ---------------------------------------------------------------------------------------
def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a .tar(.gz/.bz2/.xz) or .zip into ``dest`` after checking every member.

    Raises:
        DataError: the file is not an archive, or a member would land outside ``dest`` (absolute
            path, ``..``, a symbolic or hard link leading outside) or is a device/FIFO. Nothing is
            extracted from a refused archive.
    """
    dest = Path(dest)
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                _check_member(archive, m.name, dest, _tar_link(m), special=not (m.isfile() or m.isdir() or m.issym() or m.islnk()))
            tar.extractall(dest, members=members, filter="data")  # the stdlib's own checks as a second line
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                mode = info.external_attr >> 16
                link = ("symbolic", zf.read(info).decode("utf-8", "replace")) if stat.S_ISLNK(mode) else None
                kind = stat.S_IFMT(mode)  # 0 when the archiver stored permissions only
                _check_member(archive, info.filename, dest, link, special=kind not in (0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK))
            zf.extractall(dest)
    else:
        raise DataError(f"{archive.name} is not a tar or zip archive — the download is damaged or the URL is wrong")


def _tar_link(member: tarfile.TarInfo) -> tuple[str, str] | None:
    if member.issym():
        return "symbolic", member.linkname
    if member.islnk():
        return "hard", member.linkname
    return None


def _check_member(archive: Path, name: str, dest: Path, link: tuple[str, str] | None, special: bool) -> None:
    def refuse(why: str) -> DataError:
        return DataError(f"refusing to extract {archive.name}: member {name!r} {why} — the archive is unsafe; do not use it")

    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise refuse("has an absolute path")
    if ".." in clean.split("/"):
        raise refuse("climbs out of the destination with '..'")
    if special:
        raise refuse("is a device or FIFO, not a file")
    if link is not None:
        kind, target = link
        target = target.replace("\\", "/")
        if target.startswith("/"):
            raise refuse(f"is a {kind} link to the absolute path {target!r}")
        # symbolic links resolve from the member's folder, hard links from the archive's root
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(clean) if kind == "symbolic" else "", target))
        if resolved == ".." or resolved.startswith("../"):
            raise refuse(f"is a {kind} link leading outside the destination ({target!r})")
