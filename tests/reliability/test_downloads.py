"""`transferlab datasets get` against a local HTTP server serving archives the test builds."""

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from transferlab.data.download import get_dataset
from transferlab.errors import DataError

from .conftest import make_photo


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "www"
    root.mkdir()
    photo = make_photo(tmp_path / "p.jpg", 1, seed=0).read_bytes()
    (root / "images.tar.gz").write_bytes(_tar_gz({f"images/Bengal_{i}.jpg": photo for i in range(1, 4)}))
    (root / "annotations.tar.gz").write_bytes(_tar_gz({"annotations/list.txt": b"Bengal_1 1 1 1\n"}))
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_verifies_and_extracts_the_native_layout(server, tmp_path: Path) -> None:
    url, root = server
    resources = [(f"{url}/{n}", _md5(root / n)) for n in ("images.tar.gz", "annotations.tar.gz")]
    target = get_dataset("oxford-iiit-pet", tmp_path / "data", resources)
    assert target == tmp_path / "data" / "oxford-iiit-pet"
    assert sorted(p.name for p in (target / "images").iterdir()) == ["Bengal_1.jpg", "Bengal_2.jpg", "Bengal_3.jpg"]
    assert (target / "annotations" / "list.txt").is_file()
    assert get_dataset("oxford-iiit-pet", tmp_path / "data", [("http://127.0.0.1:9/unused", "0")]) == target  # already there


def test_wrong_checksum_is_a_clear_error_and_leaves_nothing_that_looks_complete(server, tmp_path: Path) -> None:
    url, root = server
    resources = [(f"{url}/images.tar.gz", _md5(root / "images.tar.gz")), (f"{url}/annotations.tar.gz", "0" * 32)]
    with pytest.raises(DataError, match="could not download a verified annotations.tar.gz"):
        get_dataset("oxford-iiit-pet", tmp_path / "data", resources)
    assert not (tmp_path / "data" / "oxford-iiit-pet").exists()
    assert not any(p.name.startswith(".oxford-iiit-pet-") and p.is_dir() and (p / "images").exists() for p in (tmp_path / "data").iterdir())


def test_unknown_dataset_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="oxford-iiit-pet"):
        get_dataset("imagenet", tmp_path)
