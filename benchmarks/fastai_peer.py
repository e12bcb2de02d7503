"""Peer check: fastai 2.8 ``vision_learner(...).fine_tune(4)`` on the same data with the same weights.

Runs in its own virtual environment, so fastai never becomes a transferlab dependency:

    .venv/bin/python benchmarks/fastai_peer.py --export /tmp/lite0.safetensors   # our bundled weights, timm keys
    python -m venv /tmp/fa && /tmp/fa/bin/pip install torch torchvision timm 'fastai==2.8.*'
    /tmp/fa/bin/python benchmarks/fastai_peer.py --weights /tmp/lite0.safetensors [--data ../shared/data/oxford-iiit-pet-mini]

Trains on Oxford trainval, validates on test (fastai's own defaults otherwise: Adam, its default learning
rate, one frozen epoch then 4 unfrozen, 224 px), and prints wall time and final test accuracy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def export(path: Path) -> None:
    from safetensors.torch import save_file

    import transferlab as tl

    net = tl.create_backbone("efficientnet_lite0").model.net
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    print(f"wrote {path} (timm tf_efficientnet_lite0 keys)")


def peer(weights: Path, data: Path, epochs: int) -> None:
    from fastai.vision.all import CategoryBlock, DataBlock, ImageBlock, Resize, accuracy, aug_transforms, vision_learner

    names = lambda split: {line.split()[0] for line in (data / "annotations" / f"{split}.txt").read_text().splitlines() if line.strip()}  # noqa: E731
    listed = names("trainval") | names("test")
    test = names("test")
    files = [p for p in sorted((data / "images").glob("*.jpg")) if p.stem in listed]
    started = time.perf_counter()
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        get_items=lambda _: files,
        get_y=lambda p: p.stem.rsplit("_", 1)[0],
        splitter=lambda items: ([i for i, p in enumerate(items) if p.stem not in test], [i for i, p in enumerate(items) if p.stem in test]),
        item_tfms=Resize(224),
        batch_tfms=aug_transforms(),
    )
    dls = block.dataloaders(data, num_workers=0)
    learn = vision_learner(dls, "tf_efficientnet_lite0", metrics=accuracy, pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
    learn.fine_tune(epochs)
    wall = time.perf_counter() - started
    _, acc = learn.validate()
    print(f"fastai fine_tune({epochs}): wall {wall:.1f} s, test accuracy {float(acc):.3f} on {len(dls.valid_ds)} images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, help="Write our bundled weights with timm keys and stop.")
    parser.add_argument("--weights", type=Path, help="The file --export wrote.")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    if args.export:
        export(args.export)
    else:
        peer(args.weights, args.data, args.epochs)


if __name__ == "__main__":
    main()
