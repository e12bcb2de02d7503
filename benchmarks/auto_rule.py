"""How often ``--backbone auto``'s rule keeps a costlier candidate that is not better: random labels (every
candidate at chance) and a wrecked candidate (pure noise features), many seeded draws, no training images.

    .venv/bin/python benchmarks/auto_rule.py [--draws 100] [--images 300] [--classes 10]

Prints the share of draws in which the ladder left the default, for the corrected repeated k-fold t-test it
uses and, for comparison, a bootstrap of the images' out-of-fold verdicts at the same level.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from transferlab.train.crossval import ladder, out_of_fold, repeats_for, required_win_rate, win_rate


def features(y: np.ndarray, strength: float, seed: int, classes: int, dim: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(y), dim, generator=g)
    x[:, :classes] += strength * torch.nn.functional.one_hot(torch.as_tensor(y), classes).float()
    return x


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--draws", type=int, default=100)
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--case", choices=("random", "wrecked", "both"), default="both")
    a = p.parse_args()
    need = required_win_rate(0.9, 2)
    cases = {"random": ("random labels", (0.0, 0.0, 0.0)), "wrecked": ("wrecked candidates", (1.0, 0.0, 0.0))}
    for case, strengths in (cases.values() if a.case == "both" else [cases[a.case]]):
        moved_t = moved_boot = 0
        for draw in range(a.draws):
            y = np.random.default_rng(draw).integers(0, a.classes, a.images)
            oofs = [out_of_fold(features(y, s, 100 * draw + i, a.classes), y, 5, repeats_for(len(y)), draw) for i, s in enumerate(strengths)]
            pick, _ = ladder(["a", "b", "c"], [o.fold_accuracy for o in oofs], 0.9, oofs[0].folds)
            moved_t += pick != 0
            moved_boot += any(win_rate(oofs[0].per_image, o.per_image, seed=draw) >= need for o in oofs[1:])
        print(f"{case}: {a.draws} draws of {a.images} images, {a.classes} classes: the t-test rule moved off the default in {moved_t} "
              f"({100 * moved_t / a.draws:.0f}%); a bootstrap of the images at the same {100 * need:.0f}% would have in {moved_boot} ({100 * moved_boot / a.draws:.0f}%)")


if __name__ == "__main__":
    main()
