"""Which files are images, a cheap header check (``sniff``) and a full decode to upright RGB (``open_rgb``).

``sniff`` only reads the header so that a 100k-image folder loads in seconds; the full decode happens
once, later, during feature extraction (or in ``check_dataset``), and files that fail there are dropped.
Truncated files are never silently padded: ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left off. An image
whose header announces more than ``MAX_PIXELS`` pixels is refused before a single pixel is decoded (a
decompression bomb: a few KB of PNG can expand to gigabytes).
"""

from __future__ import annotations

import errno
import io
import re
import stat
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "__macosx"})  # OS droppings, never data
# Refused unread above this many pixels. Pillow's own warning threshold (~0.25 GiB as RGB); a classifier
# sees 224-px crops, so nothing is lost. Raise it here (``transferlab.data.decode.MAX_PIXELS = ...``) if needed.
MAX_PIXELS = 89_478_485
MIN_SIDE = 32  # images with a shorter side are kept but warned about: upscaled, they carry little detail

# What a broken or hostile file can make Pillow raise (UnidentifiedImageError is an OSError).
_PIL_ERRORS = (OSError, EOFError, SyntaxError, ValueError, struct.error, Image.DecompressionBombError)

_KNOWN_NON_IMAGES = {
    ".mat": "MATLAB .mat file",
    ".txt": "text file",
    ".xml": "XML file",
    ".json": "JSON file",
    ".csv": "CSV file",
    ".pdf": "PDF file",
    ".docx": "Word document",
    ".zip": "zip archive",
    ".mp4": "video",
    ".mov": "video",
}


class BadImageError(DataError):
    """A file cannot be decoded to an image; ``reason`` is one short sentence (what ``Skipped`` records)."""

    def __init__(self, reason: str, path: Path | None = None) -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path is not None else reason)


def is_ignored(name: str) -> bool:
    """True for hidden entries (``.DS_Store``, ``._x.jpg``, ``.git``) and OS droppings (``Thumbs.db``)."""
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def is_image_name(path: Path) -> bool:
    """True when the file's suffix (any case) is one of ``IMAGE_EXTENSIONS``."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def non_image_reason(path: Path) -> str:
    """The skip reason for a file whose name is not an image's, e.g. ``not an image (MATLAB .mat file)``."""
    suffix = path.suffix.lower()
    kind = _KNOWN_NON_IMAGES.get(suffix, f"{suffix} file" if suffix else "no file extension")
    return f"not an image ({kind})"


def _error_reason(err: BaseException) -> str:
    """One line from a Pillow error, e.g. ``cannot decode: image file is truncated``."""
    if isinstance(err, Image.DecompressionBombError):  # over twice Pillow's own limit: it refused from the header
        sizes = [f"{int(n):,}" for n in re.findall(r"\d+", str(err))[:2]]
        detail = f" ({sizes[0]} > {sizes[1]}, Pillow's limit)" if len(sizes) == 2 else ""
        return f"too many pixels{detail}: refused unread as a possible decompression bomb"
    if isinstance(err, Image.UnidentifiedImageError):
        return "not an image Pillow can read (unknown or corrupt format)"
    text = (str(err).splitlines() or [""])[0].strip()
    text = text.split(" (", 1)[0] if "image file is truncated" in text else text
    return f"cannot decode: {text or type(err).__name__}"


def os_reason(err: OSError, path: Path | None = None) -> str:
    """One line for a file-system error: broken or looping symbolic links are named as such."""
    if err.errno == errno.ELOOP:
        return "symbolic link loop (the link leads back to itself)"
    if err.errno == errno.ENOENT and path is not None and Path(path).is_symlink():
        return f"broken symbolic link (its target {display_target(path)} does not exist)"
    return f"cannot read: {err.strerror or err}"


def display_target(link: Path) -> str:
    try:
        return repr(str(Path(link).readlink()))
    except OSError:
        return "?"


def check_size(width: int, height: int, max_pixels: int | None = None) -> None:
    """Raise ``BadImageError`` for an image without pixels or with more than ``max_pixels`` (default ``MAX_PIXELS``)."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if width <= 0 or height <= 0:
        raise BadImageError(f"cannot decode: image has no pixels ({width}x{height})")
    if width * height > limit:
        raise BadImageError(
            f"too many pixels ({width}x{height} = {width * height:,} > {limit:,}): refused unread as a possible "
            "decompression bomb"
        )


def tiny_reason(size: tuple[int, int], min_side: int | None = None) -> str | None:
    """The warning for an image with a side under ``min_side`` (default ``MIN_SIDE``) pixels, else ``None``."""
    limit = MIN_SIDE if min_side is None else min_side
    if min(size) < limit:
        return f"tiny image ({size[0]}x{size[1]}, a side under {limit} px): used, but it carries little detail"
    return None


def header_size(path: Path, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding pixels.

    Raises:
        BadImageError: not an image file name, empty, unreadable, not an image, or too many pixels.
    """
    path = Path(path)
    if not is_image_name(path):
        raise BadImageError(non_image_reason(path))
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end when read
            raise BadImageError("not a regular file (a device, FIFO or socket)")
        if st.st_size == 0:
            raise BadImageError("empty file (0 bytes)")
        with Image.open(path) as image:  # reads the header only
            size = image.size
    except _PIL_ERRORS as err:
        if isinstance(err, OSError) and not isinstance(err, Image.UnidentifiedImageError) and err.errno is not None:
            raise BadImageError(os_reason(err, path)) from err
        raise BadImageError(_error_reason(err)) from err
    check_size(*size, max_pixels=max_pixels)
    return size


def sniff(path: Path, max_pixels: int | None = None) -> str | None:
    """Cheap check that a file looks like a decodable image (header only, no pixel decode).

    Args:
        path: the file.
        max_pixels: refuse larger images (default ``MAX_PIXELS``).

    Returns:
        ``None`` when the file looks usable, else a one-sentence reason to skip it, e.g.
        ``"empty file (0 bytes)"`` or ``"not an image (MATLAB .mat file)"``. The content decides the
        format, not the name: a GIF or PNG named ``.jpg`` is fine.
    """
    try:
        header_size(path, max_pixels)
    except BadImageError as err:
        return err.reason
    return None


def open_rgb(source: Path | str | bytes, *, draft: tuple[int, int] | None = None, max_pixels: int | None = None) -> Image.Image:
    """Fully decode an image file to an upright 8-bit RGB image.

    EXIF orientation is applied; transparency (RGBA, LA, palette or tRNS) is composited on white;
    16-bit and float grayscale is scaled to 8 bits; CMYK uses Pillow's conversion; animated images
    give their first frame.

    Args:
        source: a path, or the file's bytes.
        draft: optional (width, height) lower bound; JPEGs may then decode at 1/2, 1/4 or 1/8 scale
            while staying at least this large (faster, same quality after resizing down to it).
        max_pixels: images announcing more pixels are refused before decoding (default ``MAX_PIXELS``).

    Returns:
        A new ``RGB`` image, independent of the file.

    Raises:
        BadImageError: the file is not a readable image (``.reason`` says why in one line).
    """
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source)) as image:
            check_size(*image.size, max_pixels=max_pixels)  # before any pixel is decoded
            if draft is not None:
                image.draft(None, tuple(draft))  # no-op for non-JPEG formats
            image.load()
            upright = ImageOps.exif_transpose(image)  # always a copy, so closing the file is safe
        return to_rgb(upright)
    except _PIL_ERRORS as err:
        if isinstance(err, OSError) and not isinstance(err, Image.UnidentifiedImageError) and err.errno is not None:
            raise BadImageError(os_reason(err, None if isinstance(source, bytes) else Path(source))) from err
        raise BadImageError(_error_reason(err)) from err


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a decoded image of any Pillow mode to 8-bit RGB (transparency composited on white).

    Raises:
        BadImageError: the mode has no RGB conversion.
    """
    mode = image.mode
    if mode == "RGB" and "transparency" not in image.info:
        return image
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        white.alpha_composite(rgba)
        return white.convert("RGB")
    if mode.startswith("I;16"):  # 16-bit PNG/TIFF: the bit depth is known
        return Image.fromarray(np.rint(np.asarray(image) / 257).astype(np.uint8), "L").convert("RGB")
    if mode in ("I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(image)), "L").convert("RGB")
    try:
        return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...
    except ValueError as err:
        raise BadImageError(f"cannot decode: no RGB conversion for colour mode {mode}") from err


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map a 32-bit integer or float grayscale array to 0..255.

    The range is inferred from the data because Pillow keeps no bit depth for ``I``/``F`` images:
    within [0, 1] (float) scales by 255, within [0, 255] is kept, within [0, 65535] is 16-bit (/257),
    anything else is stretched min..max.
    """
    is_float = values.dtype.kind == "f"
    values = np.nan_to_num(values.astype(np.float64))
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if is_float and lo >= 0 and hi <= 1:
        scaled = values * 255
    elif lo >= 0 and hi <= 255:
        scaled = values
    elif lo >= 0 and hi <= 65535:
        scaled = values / 257
    else:
        scaled = (values - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
