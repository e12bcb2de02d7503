"""`transferlab datasets get` against a local HTTP server serving archives the tests build, hostile ones included."""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from pathlib import Path

import pytest

import transferlab as tl
from transferlab.data.download import Resource, get_dataset

from ..conftest import ArchiveServer, make_photo, tar_gz
from .conftest import run_cli

pytestmark = pytest.mark.reliability


def zip_bytes(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def photo() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return make_photo(Path(tmp) / "p.jpg", 1, seed=0).read_bytes()


def oxford_archives(photo: bytes) -> dict[str, bytes]:
    names = [f"{breed}_{i}" for breed in ("Bengal", "beagle") for i in range(1, 4)]
    listing = "".join(f"{n} 1 {1 if n[0].isupper() else 2} 1\n" for n in names).encode()
    return {
        "images.tar.gz": tar_gz({f"images/{n}.jpg": photo for n in names}),
        "annotations.tar.gz": tar_gz({"annotations/list.txt": listing}),
    }


def serve(server: ArchiveServer, archives: dict[str, bytes]) -> list[Resource]:
    server.files.update(archives)
    return [Resource(f"{server.url}/{name}", sha256(data)) for name, data in archives.items()]


def test_oxford_and_petimages_download_verify_and_extract(archive_server, photo, tmp_path: Path, reliability) -> None:
    resources = serve(archive_server, oxford_archives(photo))
    target = get_dataset("oxford-iiit-pet", tmp_path / "data", resources)
    assert target == tmp_path / "data" / "oxford-iiit-pet" and len(tl.load_dataset(target).samples) == 6
    assert get_dataset("oxford-iiit-pet", tmp_path / "data", [Resource("http://127.0.0.1:9/gone", "0" * 32)]) == target  # present: no network
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["oxford-iiit-pet"]  # no staging or download left

    pet = zip_bytes({**{f"PetImages/{c}/{i}.jpg": photo for c in ("Cat", "Dog") for i in range(3)}, "PetImages/Cat/666.jpg": b"", "readme[1].txt": b"hi"})
    target = get_dataset("petimages", tmp_path / "data", serve(archive_server, {"kagglecatsanddogs_5340.zip": pet}))
    ds = tl.load_dataset(target)
    assert ds.layout == "petimages" and len(ds.samples) == 6 and [s.reason for s in ds.skipped] == ["empty file (0 bytes)"]
    reliability("Downloads", "oxford-iiit-pet and petimages from a local server (checksums verified)",
                "extracted into the native layouts; a second call does not touch the network; nothing else left in --dest", cases=2)


def test_a_dropped_connection_resumes_where_it_stopped(archive_server, photo, tmp_path: Path, reliability) -> None:
    resources = serve(archive_server, oxford_archives(photo))
    size = len(archive_server.files["images.tar.gz"])
    archive_server.cut["images.tar.gz"] = size // 3  # the first response stops a third of the way
    get_dataset("oxford-iiit-pet", tmp_path / "data", resources)
    ranges = [r for name, r in archive_server.requests if name == "images.tar.gz"]
    assert ranges == [None, f"bytes={size // 3}-"]  # the second request asked only for the rest
    reliability("Downloads", "connection dropped mid-download", f"resumed with an HTTP Range request from byte {size // 3:,} of {size:,}; verified and extracted")


def test_an_interrupted_download_continues_on_the_next_call(archive_server, photo, tmp_path: Path, reliability, monkeypatch) -> None:
    import transferlab.data.download as download

    resources = serve(archive_server, oxford_archives(photo))
    monkeypatch.setattr(download, "ATTEMPTS", 1)
    size = len(archive_server.files["images.tar.gz"])
    archive_server.cut["images.tar.gz"] = size // 2
    with pytest.raises(tl.DataError, match="continues where it stopped"):
        get_dataset("oxford-iiit-pet", tmp_path / "data", resources)
    assert not (tmp_path / "data" / "oxford-iiit-pet").exists()
    assert (tmp_path / "data" / ".oxford-iiit-pet-downloads" / "images.tar.gz.part").stat().st_size == size // 2
    get_dataset("oxford-iiit-pet", tmp_path / "data", resources)  # the next call picks up the part
    assert [r for name, r in archive_server.requests if name == "images.tar.gz"][-1] == f"bytes={size // 2}-"
    reliability("Downloads", "download interrupted and the command run again", "clear error first (nothing that looks complete); the rerun fetched only the missing half")


def test_a_wrong_checksum_is_a_clear_error_and_leaves_nothing_that_looks_complete(archive_server, photo, tmp_path: Path, reliability) -> None:
    resources = serve(archive_server, oxford_archives(photo))
    resources[1] = Resource(resources[1].url, "sha256:" + "0" * 64)
    with pytest.raises(tl.DataError, match="annotations.tar.gz .* has sha256 [0-9a-f]{64}, expected 0{64}") as info:
        get_dataset("oxford-iiit-pet", tmp_path / "data", resources)
    assert not (tmp_path / "data" / "oxford-iiit-pet").exists()
    assert not list((tmp_path / "data").glob(".oxford-iiit-pet-*/images"))  # nothing extracted anywhere
    assert not list((tmp_path / "data").rglob("annotations.tar.gz*"))  # the bad file is gone: the retry starts clean
    reliability("Downloads", "wrong checksum", f"clear error \u201c{str(info.value).split(' from ')[0]} … has sha256 …, expected …\u201d; nothing extracted; the bad file deleted")


def test_server_errors_are_clear(archive_server, tmp_path: Path, reliability) -> None:
    with pytest.raises(tl.DataError, match=r"HTTP 404 .* check the URL"):
        get_dataset("oxford-iiit-pet", tmp_path / "data", [Resource(f"{archive_server.url}/missing.tar.gz", "0" * 32)])
    with pytest.raises(tl.DataError, match="unknown dataset 'imagenet'; expected one of oxford-iiit-pet, petimages"):
        get_dataset("imagenet", tmp_path)
    reliability("Downloads", "HTTP 404; unknown dataset name", "clear one-line errors", cases=2)


HOSTILE = {
    "tar: ../ path": ("evil.tar.gz", lambda p: tar_gz({"images/ok.jpg": p, "../escaped.txt": b"x"}), "climbs out"),
    "tar: absolute path": ("evil.tar.gz", lambda p: tar_gz({"/tmp/transferlab-escaped.txt": b"x"}), "absolute path"),
    "tar: symlink to an absolute path": ("evil.tar.gz", lambda p: tar_gz({}, {"images/etc": ("sym", "/etc")}), "link to the absolute path"),
    "tar: symlink leading outside": ("evil.tar.gz", lambda p: tar_gz({}, {"images/up": ("sym", "../../..")}), "link leading outside"),
    "tar: hard link leading outside": ("evil.tar.gz", lambda p: tar_gz({}, {"images/passwd": ("hard", "../../etc/passwd")}), "link leading outside"),
    "zip: ../ path": ("evil.zip", lambda p: zip_bytes({"PetImages/Cat/1.jpg": p, "../../escaped.txt": b"x"}), "climbs out"),
    "zip: absolute path": ("evil.zip", lambda p: zip_bytes({"/tmp/transferlab-escaped.txt": b"x"}), "absolute path"),
    "zip: symlink leading outside": ("evil.zip", lambda p: zip_bytes({}, {"PetImages/Cat/link": "../../../../etc/passwd"}), "link leading outside"),
    "not an archive at all": ("evil.zip", lambda p: b"<html>503 Service Unavailable</html>", "not a tar or zip archive"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_archives_are_refused_and_nothing_is_written_outside(archive_server, photo, tmp_path: Path, kind: str, reliability) -> None:
    name, build, match = HOSTILE[kind]
    data = build(photo)
    dest = tmp_path / "deep" / "down" / "data"
    with pytest.raises(tl.DataError, match=match) as info:
        get_dataset("petimages", dest, serve(archive_server, {name: data}))
    assert not (dest / "petimages").exists()
    outside = [p for p in tmp_path.rglob("*") if "escaped" in p.name or p.name in ("etc", "up", "passwd", "link")]
    assert outside == [] and not Path("/tmp/transferlab-escaped.txt").exists()
    assert [p.name for p in dest.glob(".petimages-*")] == [".petimages-downloads"]  # the staging folder is removed
    reliability("Downloads", f"hostile archive — {kind}", f"refused before extracting: \u201c{str(info.value).split(' — ')[0]}\u201d; nothing written")


def test_the_cli_downloads_with_one_line_errors(archive_server, tmp_path: Path, reliability) -> None:
    done = run_cli("datasets", "get", "imagenet", "--dest", tmp_path)  # refused by the parser, before anything loads
    last = done.stderr.decode().strip().splitlines()[-1]
    assert done.returncode == 2 and "'imagenet' is not one of 'oxford-iiit-pet', 'petimages'" in last and last.startswith("Error:")
    assert not any(tmp_path.iterdir())
    reliability("Downloads", "`transferlab datasets get` with a bad name", "exit 2, the usage line and one error line naming the datasets there are")
