"""`transferlab datasets get` succeeding, against a plain HTTP server on 127.0.0.1 serving archives built here
(the failure paths, resumes and hostile archives are in tests/reliability/test_downloads.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path


import transferlab as tl
from transferlab.data import download
from transferlab.data.download import Resource

from ..conftest import ArchiveServer, make_photo, tar_gz
from ..test_cli import cli

NAMES = [f"{breed}_{i}" for breed in ("Bengal", "beagle") for i in range(1, 4)]  # Oxford's naming: cats capitalised


def test_datasets_get_downloads_verifies_and_extracts_oxford(capsys, monkeypatch, tmp_path: Path, archive_server: ArchiveServer) -> None:
    url = archive_server.url
    photos = {n: make_photo(tmp_path / "photos" / f"{n}.jpg", hue=i // 3, seed=i).read_bytes() for i, n in enumerate(NAMES)}
    listing = "".join(f"{n} {1 + i // 3} {1 if n[0].isupper() else 2} 1\n" for i, n in enumerate(NAMES)).encode()
    archives = {"images.tar.gz": tar_gz({f"images/{n}.jpg": data for n, data in photos.items()}),
                "annotations.tar.gz": tar_gz({"annotations/list.txt": listing})}
    archive_server.files.update(archives)
    table = tuple(Resource(f"{url}/{name}", "md5:" + hashlib.md5(data).hexdigest()) for name, data in archives.items())  # as torchvision's table
    monkeypatch.setitem(download.DATASETS, "oxford-iiit-pet", lambda: table)

    code, out, err = cli(capsys, monkeypatch, "datasets", "get", "oxford-iiit-pet", "--dest", tmp_path / "data", "--quiet")
    assert code == 0, err
    assert "oxford-iiit-pet ready in" in out
    target = tmp_path / "data" / "oxford-iiit-pet"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["oxford-iiit-pet"]  # no archive or staging folder left
    assert {p.stem: p.read_bytes() for p in (target / "images").iterdir()} == photos  # every photo, byte for byte
    assert (target / "annotations" / "list.txt").read_bytes() == listing
    ds = tl.load_dataset(target)
    assert ds.layout == "oxford" and len(ds.samples) == 6 and len(ds.classes) == 2

    # The checksum is checked: the server now sends other bytes under the same name; nothing lands.
    archive_server.files["images.tar.gz"] = tar_gz({f"images/{n}.jpg": b"not a photo" for n in NAMES})
    code, out, err = cli(capsys, monkeypatch, "datasets", "get", "oxford-iiit-pet", "--dest", tmp_path / "other", "--quiet")
    assert code == 1 and "images.tar.gz" in err and "expected " + table[0].checksum[4:] in err and "Traceback" not in err
    assert not (tmp_path / "other" / "oxford-iiit-pet").exists()
