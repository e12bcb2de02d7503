"""open_rgb gives upright 8-bit RGB for every mode; broken files raise BadImageError; sniff is header-only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from PIL import Image, ImageFile

from transferlab.data import BadImageError, open_rgb, sniff
from transferlab.errors import DataError


def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def test_transparent_pixels_become_white_not_black(tmp_path: Path) -> None:
    rgba = np.zeros((30, 40, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # opaque-red where alpha is 255
    rgba[:, 20:, 3] = 255
    path = _save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.jpg", format="PNG")  # PNG named .jpg
    got = np.asarray(open_rgb(path))
    assert got.shape == (30, 40, 3) and got.dtype == np.uint8
    assert tuple(got[0, 0]) == (255, 255, 255)
    assert tuple(got[0, 30]) == (200, 0, 0)


def test_palette_with_transparency_and_la_composite_on_white(tmp_path: Path) -> None:
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.putpixel((0, 0), 1)
    path = _save(pal, tmp_path / "p.png", transparency=0)
    got = open_rgb(path)
    assert got.getpixel((1, 1)) == (255, 255, 255) and got.getpixel((0, 0)) == (10, 200, 30)
    la = Image.merge("LA", [Image.new("L", (4, 4), 50), Image.new("L", (4, 4), 0)])
    assert open_rgb(_save(la, tmp_path / "la.png")).getpixel((0, 0)) == (255, 255, 255)


def test_plain_palette_and_grayscale(tmp_path: Path) -> None:
    pal = Image.new("P", (5, 5), 2)
    pal.putpalette([0, 0, 0, 1, 2, 3, 90, 80, 70] + [0] * 759)
    assert open_rgb(_save(pal, tmp_path / "p.png")).getpixel((2, 2)) == (90, 80, 70)
    gray = Image.new("L", (5, 5), 77)
    got = open_rgb(_save(gray, tmp_path / "g.jpg"))
    assert got.mode == "RGB" and abs(got.getpixel((0, 0))[0] - 77) <= 1


def test_16_bit_grayscale_is_scaled_to_8_bit(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "g16.png")
    assert Image.open(path).mode.startswith("I")  # Pillow reads it as a 16/32-bit integer image
    assert [open_rgb(path).getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (100, 100, 100), (255, 255, 255)]


def test_32_bit_integer_and_float_grayscale(tmp_path: Path) -> None:
    ints = Image.fromarray(np.array([[0, 30000, 65535]], dtype=np.int32), "I")
    assert open_rgb(_save(ints, tmp_path / "i.tif")).getpixel((2, 0)) == (255, 255, 255)
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F")
    assert [open_rgb(_save(floats, tmp_path / "f.tif")).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_cmyk_jpeg_uses_pillows_conversion(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (10, 10), (0, 255, 255, 0))  # pure red in CMYK
    got = open_rgb(_save(cmyk, tmp_path / "c.jpg", quality=95))
    r, g, b = got.getpixel((5, 5))
    assert got.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = _save(Image.new("RGB", (40, 30), (0, 128, 0)), tmp_path / "r.jpg", exif=exif)
    assert Image.open(path).size == (40, 30)
    assert open_rgb(path).size == (30, 40)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (6, 6), c).convert("P") for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.jpg"
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:])
    assert open_rgb(path).getpixel((3, 3)) == (255, 0, 0)


def test_bytes_source_and_draft_decode(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (400, 300), (10, 20, 30)), tmp_path / "big.jpg")
    small = open_rgb(path.read_bytes(), draft=(100, 100))
    assert small.mode == "RGB" and 100 <= min(small.size) < 300  # JPEG decoded at a reduced scale


def test_truncated_jpeg_raises_bad_image_error(tmp_path: Path, make_image) -> None:
    good = make_image(tmp_path / "x.jpg", size=(200, 150))
    data = good.read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    assert sniff(tmp_path / "t.jpg") is None  # the header is intact: only the full decode finds it
    with pytest.raises(BadImageError) as info:
        open_rgb(tmp_path / "t.jpg")
    assert isinstance(info.value, DataError) and "truncated" in info.value.reason
    assert "\n" not in info.value.reason


def test_decompression_bomb_raises_bad_image_error(tmp_path: Path, make_image, monkeypatch) -> None:
    path = make_image(tmp_path / "x.png", fmt="PNG")
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)  # 40x30 = 1200 > 2 x 100
    with pytest.raises(BadImageError, match="decompression bomb"):
        open_rgb(path)


def test_random_bytes_raise_bad_image_error() -> None:
    with pytest.raises(BadImageError, match="not an image"):
        open_rgb(bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)))


def test_sniff_reasons(tmp_path: Path, make_image) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "noise.jpg").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "x.mat").write_bytes(b"MATLAB 5.0")
    gif = make_image(tmp_path / "gif.jpg", fmt="GIF", mode="P")
    assert sniff(tmp_path / "empty.jpg") == "empty file (0 bytes)"
    assert "not an image" in sniff(tmp_path / "noise.jpg")
    assert sniff(tmp_path / "x.mat") == "not an image (MATLAB .mat file)"
    assert sniff(gif) is None and sniff(make_image(tmp_path / "ok.JPG")) is None


def test_sniff_reads_only_the_header(tmp_path: Path, make_image, monkeypatch) -> None:
    path = make_image(tmp_path / "x.jpg")
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("sniff decoded the pixels"))
    assert sniff(path) is None


def test_open_rgb_returns_an_image_independent_of_the_file(tmp_path: Path, make_image) -> None:
    path = make_image(tmp_path / "x.jpg")
    image = open_rgb(path)
    path.unlink()
    assert np.asarray(image).shape == (30, 40, 3)
