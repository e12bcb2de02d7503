"""Tiny generated datasets for the data tests: every file is a few hundred bytes, built in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MakeImage = Callable[..., Path]


def write_image(
    path: Path, seed: int = 0, size: tuple[int, int] = (40, 30), fmt: str = "JPEG", mode: str = "RGB"
) -> Path:
    """Write a small noisy image of ``mode`` in format ``fmt`` to ``path`` (whatever its suffix)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


@pytest.fixture
def make_image() -> MakeImage:
    """``make_image(path, seed=0, size=(40, 30), fmt="JPEG", mode="RGB")`` -> path."""
    return write_image


@pytest.fixture
def oxford_root(tmp_path: Path) -> Path:
    """A miniature Oxford-IIIT Pet: 3 breeds (2 cat, 1 dog) x 6 images, paper split 4 trainval / 2 test.

    Also: Abyssinian_1.jpg is a GIF, Abyssinian_2.jpg an RGBA PNG, a stray .mat file, a listed image
    whose file is missing (Bengal_9) and an image missing from list.txt (Abyssinian_7).
    """
    root = tmp_path / "oxford-iiit-pet"
    breeds = [("Abyssinian", 1, 1), ("Bengal", 6, 1), ("american_bulldog", 2, 2)]
    lines, trainval, test = ["#Image CLASS-ID SPECIES BREED ID"], [], []
    for b, (breed, class_id, species) in enumerate(breeds):
        for i in range(1, 7):
            name = f"{breed}_{i}"
            write_image(root / "images" / f"{name}.jpg", seed=10 * b + i)
            line = f"{name} {class_id} {species} 1"
            lines.append(line)
            (trainval if i <= 4 else test).append(line)
    write_image(root / "images" / "Abyssinian_1.jpg", seed=1, fmt="GIF", mode="P")
    write_image(root / "images" / "Abyssinian_2.jpg", seed=2, fmt="PNG", mode="RGBA")
    write_image(root / "images" / "Abyssinian_7.jpg", seed=7)  # on disk, not in list.txt
    (root / "images" / "Abyssinian_1.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(100))
    lines.append("Bengal_9 6 1 1")  # in list.txt, no file
    test.append("Bengal_9 6 1 1")
    (root / "annotations").mkdir()
    (root / "annotations" / "list.txt").write_text("\n".join(lines) + "\n")
    (root / "annotations" / "trainval.txt").write_text("\n".join(trainval) + "\n")
    (root / "annotations" / "test.txt").write_text("\n".join(test) + "\n")
    return root
