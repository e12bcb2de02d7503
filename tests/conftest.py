"""Shared fixtures: generated photo folders, a tiny timm backbone with a weights file, a tiny trained run, the
shared Oxford mini set (tests that need it skip with the reason when it is absent), and a local HTTP server with
the archives it serves (downloads)."""

from __future__ import annotations

import functools
import http.server
import io
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OXFORD_MINI = REPO.parent / "shared" / "data" / "oxford-iiit-pet-mini"
TINY = "test_efficientnet"  # timm's 0.36 M-parameter test model: fast, same interface as the real ones

needs_oxford = pytest.mark.skipif(
    not (OXFORD_MINI / "annotations").is_dir(),
    reason=f"shared Oxford mini data not found at {OXFORD_MINI} (only on the project's machines)",
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's caches; never try the network for hub weights."""
    from huggingface_hub import constants

    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf-hub")))  # empty: as on a new machine


@functools.cache
def _fresh_torch_threads() -> int:
    """torch's thread count right after import in this environment (a subprocess: asked once per session)."""
    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True, text=True, timeout=120, check=True)
    return int(done.stdout)


@pytest.fixture(autouse=True)
def _torch_threads_unchanged() -> Iterator[None]:
    """No test may leave torch's intra-op thread count changed: it is process-wide, and one test that set it
    to 1 made every later test run single-threaded (and ``single_threaded_ops``'s test unable to fail).
    Checked only where torch was imported, so tests without torch stay cheap; a test that imported torch
    itself is held to the count a fresh import gives."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is None:
        return
    expected = before if before is not None else _fresh_torch_threads()
    if (after := torch.get_num_threads()) != expected:
        torch.set_num_threads(expected)  # the next test starts clean either way
        pytest.fail(f"the test changed torch's thread count from {expected} to {after} and did not restore it", pytrace=False)


def make_photo(path: Path, hue: int, seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    """A small JPEG whose colour depends on ``hue`` (the class) plus noise (the individual photo)."""
    rng = np.random.default_rng(seed)
    base = np.array([(hue * 97) % 256, (hue * 53 + 80) % 256, (hue * 191 + 30) % 256], dtype=float)
    pixels = np.clip(base + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=90)
    return path


COLOURS = ["cat", "dog", "fox"]  # three classes told apart by colour: even a random tiny CNN learns them


def make_photo_folder(root: Path, per_class: int = 10, size: tuple[int, int] = (48, 40)) -> Path:
    """``COLOURS`` x ``per_class`` photos in a folder-per-class layout (no given split); the same photos
    every time (photo i of class c is seeded 100 c + i)."""
    for c, name in enumerate(COLOURS):
        for i in range(per_class):
            make_photo(root / name / f"{name}_{i}.jpg", c, seed=100 * c + i, size=size)
    return root


def train_tiny(root: Path, weights: Path, out: Path | None = None, **load: float):
    """A probe run of the tiny backbone on the photos in ``root`` (fp32: the same numbers everywhere)."""
    import transferlab as tl

    return tl.train(tl.load_dataset(root, **load), backbone=TINY, weights=weights, out=out, precision="fp32")


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """3 classes x 10 photos in a folder-per-class layout (no given split)."""
    return make_photo_folder(tmp_path / "photos")


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A safetensors state dict for the tiny backbone (stands in for downloaded weights)."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model(TINY)
    path = tmp_path_factory.mktemp("weights") / f"{TINY}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_weights: Path) -> Path:
    """A probe run of the tiny backbone on 3 colour classes x 10 photos and one broken file, saved with its
    evaluation (the export, serve and report tests share it; trained once per session)."""
    root = make_photo_folder(tmp_path_factory.mktemp("data") / "photos")
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    out = tmp_path_factory.mktemp("runs") / "run"
    train_tiny(root, tiny_weights, out)
    return out


# One small network per family the registry offers (random weights, saved to local files: no network).
FAMILIES = {
    "efficientnet": "test_efficientnet",
    "resnet": "test_resnet",
    "convnext": "test_convnext",
    "regnet": "test_byobnet",  # timm builds RegNets with byobnet blocks; this is their test model
    "mobilenetv3": "mobilenetv3_small_050",
    "vit": "test_vit",
}


@pytest.fixture(scope="session")
def family_weights(tmp_path_factory: pytest.TempPathFactory):
    """``name -> path`` of a safetensors state dict for any timm architecture (made once per session)."""
    import timm
    import torch
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("family-weights")
    made: dict[str, Path] = {}

    def weights(name: str) -> Path:
        if name not in made:
            torch.manual_seed(0)
            model = timm.create_model(name)
            made[name] = folder / f"{name}.safetensors"
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(made[name]))
        return made[name]

    return weights


def tar_gz(members: dict[str, bytes], links: dict[str, tuple[str, str]] | None = None) -> bytes:
    """A .tar.gz of files (name -> bytes) and links (name -> ("sym"|"hard", target))."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


class ArchiveServer:
    """A local HTTP server for the download tests: serves ``files`` with HTTP Range support.

    ``cut[name] = n`` makes the next response for ``name`` stop after n bytes (a dropped connection);
    ``requests`` records (path, Range header) of every request.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                data, start = server.files[name], 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in server.cut:
                    body = body[: server.cut.pop(name)]
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive_server() -> Iterator[ArchiveServer]:
    server = ArchiveServer()
    yield server
    server.close()
