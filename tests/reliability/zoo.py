"""Every kind of bad (or merely odd) image file the suite tries, each built in a few milliseconds.

A ``Case`` writes its file(s) into a class folder and says what a user must see: ``skipped`` (listed
once with a reason containing ``expect``), ``warned`` (used, and listed as a warning), ``decoded`` (used,
with the right pixels), or ``ignored`` (hidden files: neither used nor listed).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..conftest import make_photo

COLOUR = (200, 40, 70)  # solid colour of the "decoded" cases, checked after decoding


@dataclass(frozen=True)
class Case:
    name: str  # the row of RELIABILITY.md
    kind: str  # "skipped" | "warned" | "decoded" | "ignored"
    expect: str  # part of the reason (skipped/warned), or of the check (decoded)
    make: Callable[[Path], list[Path]]  # writes into a class folder, returns the files a user would see
    unprivileged: bool = False  # needs a process that obeys file permissions
    colour: tuple[int, int, int] = COLOUR  # decoded cases: mean colour expected after decoding
    tolerance: float = 12.0  # per channel, for lossy formats


def _solid(fmt: str, mode: str = "RGB", **save: object) -> Callable[[Path], list[Path]]:
    def make(folder: Path) -> list[Path]:
        path = folder / f"{fmt.lower()} named as.jpg"
        Image.new("RGB", (48, 40), COLOUR).convert(mode).save(path, format=fmt, **save)
        return [path]

    return make


def _one(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], list[Path]]:
    def make(folder: Path) -> list[Path]:
        path = folder / name
        path.write_bytes(data() if callable(data) else data)
        return [path]

    return make


def _truncated() -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` black pixels: ~50 kB that decode to 400 M pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 1000) for _ in range(height // 1000)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _unreadable(folder: Path) -> list[Path]:
    path = make_photo(folder / "no permission.jpg", 1, seed=7)
    path.chmod(0)
    return [path]


def _broken_link(folder: Path) -> list[Path]:
    (folder / "broken link.jpg").symlink_to("moved-away.jpg")
    return [folder / "broken link.jpg"]


def _file_loop(folder: Path) -> list[Path]:
    (folder / "loop a.jpg").symlink_to("loop b.jpg")
    (folder / "loop b.jpg").symlink_to("loop a.jpg")
    return [folder / "loop a.jpg", folder / "loop b.jpg"]


def _folder_loop(folder: Path) -> list[Path]:
    (folder / "again").symlink_to(".", target_is_directory=True)
    return [folder / "again"]


def _fifo(folder: Path) -> list[Path]:
    os.mkfifo(folder / "pipe.jpg")  # reading it would block forever
    return [folder / "pipe.jpg"]


def _non_utf8(content: str) -> Callable[[Path], list[Path]]:
    def make(folder: Path) -> list[Path]:
        path = Path(os.fsdecode(os.fsencode(folder) + b"/caf\xe9 " + content.encode() + b".jpg"))  # Latin-1 é
        if content == "good":
            Image.new("RGB", (48, 40), COLOUR).save(path, format="JPEG", quality=95)
        else:
            path.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8)))
        return [path]

    return make


def _spaces(folder: Path) -> list[Path]:
    path = folder / "my  holiday photo (1).jpg"
    Image.new("RGB", (48, 40), COLOUR).save(path, format="JPEG", quality=95)
    return [path]


def _hidden(folder: Path) -> list[Path]:
    (folder / ".DS_Store").write_bytes(b"Bud1" + bytes(100))
    (folder / "._photo.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (folder / ".thumbnails").mkdir()
    make_photo(folder / ".thumbnails" / "t.jpg", 0, seed=3)
    return [folder / ".DS_Store", folder / "._photo.jpg", folder / ".thumbnails" / "t.jpg"]


def _cmyk(folder: Path) -> list[Path]:
    path = folder / "cmyk.jpg"
    Image.new("CMYK", (48, 40), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    return [path]


def _sixteen_bit(folder: Path) -> list[Path]:
    path = folder / "sixteen bit.jpg"
    Image.fromarray(np.full((40, 48), 257 * 120, dtype=np.uint16)).save(path, format="PNG")
    return [path]


def _exif_rotated(folder: Path) -> list[Path]:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait (rotate 90° clockwise)
    path = folder / "rotated.jpg"
    Image.new("RGB", (48, 40), COLOUR).save(path, exif=exif, quality=95)
    return [path]


def _tiny(folder: Path) -> list[Path]:
    return [make_photo(folder / "tiny.jpg", 1, seed=9, size=(20, 16))]


def _mat(folder: Path) -> list[Path]:
    return _one("Abyssinian_1.mat", b"MATLAB 5.0 MAT-file" + bytes(200))(folder)


CASES = [
    Case("zero-byte file", "skipped", "empty file (0 bytes)", _one("empty.jpg", b"")),
    Case("random bytes named .jpg", "skipped", "not an image", _one("noise.jpg", lambda: bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)))),
    Case("JPEG truncated mid-scan", "skipped", "image file is truncated", _one("truncated.jpg", _truncated)),
    Case("decompression bomb (20000x20000 PNG, 50 kB)", "skipped", "decompression bomb", _one("bomb.jpg", png_bomb)),
    Case("unreadable file (no permission)", "skipped", "Permission denied", _unreadable, unprivileged=True),
    Case("broken symbolic link", "skipped", "broken symbolic link", _broken_link),
    Case("symbolic link loop between two files", "skipped", "symbolic link loop", _file_loop),
    Case("symbolic link loop to its own folder", "skipped", "symbolic link loop", _folder_loop),
    Case("FIFO named .jpg (reading it would hang)", "skipped", "not a regular file", _fifo),
    Case("non-image file among the photos (.mat)", "skipped", "not an image (MATLAB .mat file)", _mat),
    Case("non-UTF-8 file name, broken content", "skipped", "not an image", _non_utf8("bad")),
    Case("PNG named .jpg", "decoded", "colour", _solid("PNG")),
    Case("GIF named .jpg", "decoded", "colour", _solid("GIF", "P")),
    Case("WebP named .jpg", "decoded", "colour", _solid("WEBP", quality=95)),
    Case("BMP named .jpg", "decoded", "colour", _solid("BMP")),
    Case("TIFF named .jpg", "decoded", "colour", _solid("TIFF")),
    Case("CMYK JPEG", "decoded", "colour", _cmyk, colour=(255, 0, 0), tolerance=40.0),
    Case("16-bit grayscale PNG", "decoded", "colour", _sixteen_bit, colour=(120, 120, 120)),
    Case("EXIF-rotated photo", "decoded", "upright", _exif_rotated),
    Case("non-UTF-8 file name, good content", "decoded", "colour", _non_utf8("good")),
    Case("spaces and brackets in the file name", "decoded", "colour", _spaces),
    Case("tiny image (20x16)", "warned", "tiny image", _tiny),
    Case("hidden files (.DS_Store, ._x.jpg, .thumbnails/)", "ignored", "", _hidden),
]
