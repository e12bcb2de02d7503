"""Dataset downloads for online users, with torchvision's official URLs and checksums.

Each archive is downloaded and verified, then everything is extracted into a temporary folder that is
renamed into place only when complete, so an interrupted or corrupt download never leaves a dataset
that looks whole.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import DataError

DATASETS = ("oxford-iiit-pet",)


def oxford_resources() -> tuple[tuple[str, str], ...]:
    """(url, md5) of the Oxford-IIIT Pet images and annotations archives, as torchvision records them."""
    from torchvision.datasets import OxfordIIITPet

    return tuple(OxfordIIITPet._RESOURCES)


def get_dataset(name: str, dest: Path | str = "data", resources: Sequence[tuple[str, str]] | None = None) -> Path:
    """Download and extract a dataset into ``dest/<name>``; returns that folder (skips if present).

    Args:
        name: one of ``DATASETS``.
        dest: parent folder.
        resources: (url, md5) pairs overriding the official ones (mirrors, tests).

    Raises:
        DataError: unknown name, network failure or checksum mismatch (the message names the fix).
    """
    from torchvision.datasets.utils import download_url, extract_archive

    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    target = Path(dest).expanduser() / name
    if (target / "images").is_dir() and (target / "annotations").is_dir():
        return target
    resources = tuple(resources or oxford_resources())
    Path(dest).mkdir(parents=True, exist_ok=True)
    downloads = Path(dest) / f".{name}-downloads"  # kept between attempts: a finished archive is not fetched again
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest))
    try:
        for url, md5 in resources:
            filename = url.rsplit("/", 1)[-1]
            try:
                download_url(url, str(downloads), filename=filename, md5=md5)
            except Exception as err:  # urllib/HTTP/checksum errors: all mean "could not get a verified archive"
                (downloads / filename).unlink(missing_ok=True)
                raise DataError(
                    f"could not download a verified {filename} from {url} ({err}) — check your connection and retry, "
                    "or download the archives by hand and pass DATA=path"
                ) from err
            extract_archive(str(downloads / filename), str(staging))
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(downloads, ignore_errors=True)
    return target
