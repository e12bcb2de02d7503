"""Ideal class images on this machine: the seed's pixel/TV experiment and the 10-class cross-model table.

    PYTHONPATH=src python benchmarks/dream.py [--out /tmp/dream-bench] [--threads 1] [--only pixel|table] [--tv W --l2 W] [--docs]

(a) tabby cat, bundled efficientnet_lite0 at 224 px, ``param="pixel"``: ``tv=0`` (the seed's noisy baseline)
    against the default TV weight at the same steps; probability after the 8-bit PNG round trip, total
    variation per pixel, seconds.
(b) the default recipe (fft, decorrelated colour, transforms, default TV) for 10 ImageNet classes with
    lite0, each PNG then classified by a *different* network, bundled efficientnet_lite2, through
    ``Run.predict`` (exactly what ``transferlab predict`` does with the file).
``--tv``/``--l2`` rerun (b) with other weights (the tuning in BENCHMARKS.md); ``--docs`` also writes the README's examples to docs/inspect/.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

import transferlab as tl

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["tabby cat", "Siamese cat", "zebra", "goldfish", "golden retriever", "pizza", "lemon", "daisy", "school bus", "volcano"]
PHOTO = ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini" / "images" / "Abyssinian_1.jpg"


def slug(name: str) -> str:
    return name.lower().replace(" ", "_")


def timed_dream(model, name: str, config: tl.DreamConfig) -> tuple[tl.Dream, float]:
    """The dream and the CPU seconds it used (on a loaded machine, wall seconds overstate the work)."""
    cpu = time.process_time()
    d = tl.dream(model, name, config)
    return d, time.process_time() - cpu


def pixel_experiment(lite0: tl.Run, out: Path) -> dict[str, tl.Dream]:
    default = tl.DreamConfig(param="pixel")
    runs = {"tv 0": replace(default, tv=0.0), f"tv {default.tv_weight:g} (default)": default}
    results = {}
    print(f"(a) tabby cat, lite0, 224 px, param pixel, {default.steps} steps")
    print(f"{'':>20} {'p(float)':>9} {'p(PNG)':>7} {'top-1 after PNG':>20} {'TV/pixel':>9} {'wall s':>7} {'CPU s':>6}")
    for label, config in runs.items():
        d, cpu = timed_dream(lite0.model, "tabby cat", config)
        d.save(out / f"pixel_tabby_cat_{slug(label.split(' (')[0])}.png")
        results[label] = d
        print(f"{label:>20} {d.probability:9.3f} {d.probability_png:7.3f} {d.top[0]['label']:>20} {d.tv_per_pixel:9.4f} {d.seconds:7.1f} {cpu:6.1f}")
    a, b = results.values()
    print(f"TV reduction with the default weight: {a.tv_per_pixel / b.tv_per_pixel:.1f}x\n")
    return results


def cross_model(lite0: tl.Run, lite2: tl.Run, out: Path, config: tl.DreamConfig) -> int:
    print(f"(b) default recipe {config}")
    print(f"{'class':>17} {'lite0 p(PNG)':>12} {'TV/pixel':>9} {'wall s':>7} {'CPU s':>6}   lite2 top-1 (prob)            ok")
    hits = 0
    for name in CLASSES:
        d, cpu = timed_dream(lite0.model, name, config)
        path = d.save(out / f"{slug(name)}.png")["image"]
        top = lite2.predict([path], k=1)[0]["top"][0]
        ok = top["label"] == d.class_name
        hits += ok
        print(f"{name:>17} {d.probability_png:12.3f} {d.tv_per_pixel:9.4f} {d.seconds:7.1f} {cpu:6.1f}   {top['label'][:22]:<22} ({top['prob']:.2f})   {'yes' if ok else 'no'}", flush=True)
    print(f"lite2 recognises {hits}/{len(CLASSES)} of lite0's ideal images\n")
    return hits


def docs_examples(lite0: tl.Run, docs: Path) -> None:
    """The README's pictures: ideal cat and zebra with and without TV, feature maps and Grad-CAM of a photo."""
    docs.mkdir(parents=True, exist_ok=True)
    for name in ("tabby cat", "zebra"):
        for label, config in (("tv", tl.DreamConfig(frames=8 if name == "tabby cat" else 0)), ("no_tv", tl.DreamConfig(tv=0.0))):
            tl.dream(lite0.model, name, config).save(docs / f"dream_{slug(name)}_{label}.png")
    image = lite0.load_image(PHOTO)
    tl.inspect.feature_grid(tl.feature_maps(lite0.model, image, stage=3), top=15).save(docs / "features_abyssinian.png")
    tl.gradcam(lite0.model, image).sheet().save(docs / "gradcam_abyssinian.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/dream-bench"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--only", choices=["pixel", "table"], default=None)
    parser.add_argument("--tv", type=float, default=None, help="(b) with this TV weight instead of the default")
    parser.add_argument("--l2", type=float, default=tl.DreamConfig().l2, help="(b) with this L2 weight instead of the default")
    parser.add_argument("--docs", action="store_true", help="also write docs/inspect/ examples")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    args.out.mkdir(parents=True, exist_ok=True)
    lite0, lite2 = tl.open_model("efficientnet_lite0"), tl.open_model("efficientnet_lite2")
    started = time.perf_counter()
    if args.only in (None, "pixel"):
        pixel_experiment(lite0, args.out)
    if args.only in (None, "table"):
        cross_model(lite0, lite2, args.out, tl.DreamConfig(tv=args.tv, l2=args.l2))
    if args.docs:
        docs_examples(lite0, ROOT / "docs" / "inspect")
    print(f"total {time.perf_counter() - started:.0f} s; images in {args.out}")


if __name__ == "__main__":
    main()
