"""``--backbone auto``: which bundled backbone and features to train, decided on train + val only.

Each candidate's features (cached, so the kept one costs nothing more to train on) are scored by repeated
k-fold of the probe; a candidate replaces the default only when it wins clearly on the same folds
(``train.crossval.ladder``: the corrected repeated k-fold t-test, at the keep rule's 90 % split between the
challengers), and the most accurate of those that do is kept. The split a run reports is
never seen. Candidates whose extraction the time budget cannot hold are skipped, and the record says so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._types import Progress
from ..data import Dataset, Sample
from ..data.roles import split_roles
from ..errors import ConfigError
from ..features import features_of_images
from ..models.defaults import DEFAULT_BACKBONE
from ..train.crossval import ladder, out_of_fold, repeats_for, required_win_rate
from . import steps
from .decisions import AUTO_HINT_MIN_IMAGES
from .config import TrainConfig

log = logging.getLogger(__name__)

AUTO = "auto"
TRIO = "efficientnet_lite0+efficientnet_lite1+efficientnet_lite2"
# Cheapest first: the ladder starts at the default. On the development suite's train + val images (250 per set,
# compare --combine, BENCHMARKS.md) the three bundled networks' multi-stage features scored above lite0's pooled
# ones on all seven sets, by 1 to 7 points of 5-fold accuracy; lite0's own multi-stage features on five of seven.
CANDIDATES = ((DEFAULT_BACKBONE, "pooled"), (DEFAULT_BACKBONE, "multi"), (TRIO, "multi"))
SMALL_CANDIDATES = 2  # when fine-tuning follows (large sets), only the cheap ones: tuning three networks at once would eat the budget
BUDGET_SHARE = 0.5  # the candidates' extraction may take at most this share of the time budget
FOLDS = 5


@dataclass
class Choice:
    """What ``--backbone auto`` tried, what it kept and why."""

    backbone: str
    features: str
    tried: list[dict[str, Any]] = field(default_factory=list)  # per candidate: name, accuracy, win_rate, against, kept
    skipped: list[str] = field(default_factory=list)  # candidates not tried, with the reason
    images: int = 0
    repeats: int = 1
    required: float = 0.9  # the win rate each costlier candidate needed (train.crossval.required_win_rate)
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return label(self.backbone, self.features)

    def line(self) -> str:
        """One sentence for the run's decision."""
        first = self.tried[0]
        skipped = "".join(f"; {line}" for line in self.skipped)
        if len(self.tried) == 1:
            return f"backbone auto: {self.name} ({'; '.join(self.skipped) or 'no other candidate'})"
        kept = next(t for t in self.tried if t["name"] == self.name)
        scored = f"{self.repeats}x{FOLDS}-fold probe accuracy on {self.images} train+val images{skipped}"
        if kept is first:
            best = max(self.tried[1:], key=lambda t: t["accuracy"])
            why = f"{best['name']} {best['accuracy']:.3f} vs {first['accuracy']:.3f} is not clearly better ({100 * best['win_rate']:.0f}% sure, under {100 * self.required:.0f}%)"
            return f"backbone auto: kept {self.name} — {why}; {scored}"
        return f"backbone auto: {self.name}, {kept['accuracy']:.3f} against {first['name']}'s {first['accuracy']:.3f}, {100 * kept['win_rate']:.0f}% sure it is better; {scored}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def label(backbone: str, features: str) -> str:
    return f"{backbone} ({features})" if features != "pooled" else backbone


def resolve(config: TrainConfig) -> TrainConfig:
    """The config with a concrete backbone when none was given: ``auto`` for ``--strategy auto``, else the default."""
    if config.backbone is None:
        return config.replace(backbone=AUTO if config.strategy == "auto" else DEFAULT_BACKBONE)
    if config.backbone == AUTO and config.weights:
        raise ConfigError("--backbone auto chooses among the bundled backbones and takes no --weights — name the backbone to use your weights file")
    return config


def choose_backbone(data: Dataset, config: TrainConfig, cache_dir: Path | str | None, progress: Progress | None, deadline: float | None) -> Choice:
    """The candidate to train, scored on ``data``'s train + val images (never the reported split)."""
    started = time.perf_counter()
    roles = split_roles(data)
    samples = [*roles.train, *roles.val]
    n_all = len(samples) + len(roles.report)
    tuning = config.tuning and len(roles.train) >= AUTO_HINT_MIN_IMAGES
    candidates = CANDIDATES[:SMALL_CANDIDATES] if tuning else CANDIDATES
    choice = Choice(*CANDIDATES[0])
    if tuning:
        choice.skipped.append(f"{label(*CANDIDATES[-1])} not tried: with {len(roles.train):,} training images the budget goes to fine-tuning")
    rows: dict[str, dict[Path, torch.Tensor]] = {}
    for backbone, mode in candidates:
        setup = steps.load_backbone(config.replace(backbone=backbone, features=mode), cache_dir, progress)
        cost = _seconds_per_image(setup)
        if rows and deadline is not None and cost * n_all > BUDGET_SHARE * (deadline - time.monotonic()):
            choice.skipped.append(f"{label(backbone, mode)} not tried: about {cost * n_all:.0f} s of extraction, over {BUDGET_SHARE:.0%} of the time left")
            continue
        feats, _ = steps.features_of(setup, samples, stage=f"auto: {label(backbone, mode)}")
        rows[label(backbone, mode)] = feats.rows
    return _decide(choice, rows, samples, config, started)


def _decide(choice: Choice, rows: dict[str, dict[Path, torch.Tensor]], samples: list[Sample], config: TrainConfig, started: float) -> Choice:
    """Score every extracted candidate on the images all of them could read; test each against the default."""
    usable = [s for s in samples if all(s.path in r for r in rows.values())]
    y = np.array([s.label for s in usable], dtype=int)
    choice.images, choice.repeats = len(usable), repeats_for(len(usable))
    names = list(rows)
    if len(names) > 1 and len(np.unique(y)) > 1:
        scored = [out_of_fold(torch.stack([rows[name][s.path] for s in usable]), y, FOLDS, choice.repeats, config.seed, config.probe) for name in names]
        pick, climbed = ladder(names, [o.fold_accuracy for o in scored], config.finetune.min_win_rate, scored[0].folds)
        choice.required = required_win_rate(config.finetune.min_win_rate, len(names) - 1)
        choice.tried = [asdict(step) for step in climbed]
        backbone, mode = next((b, m) for b, m in CANDIDATES if label(b, m) == names[pick])
        choice.backbone, choice.features = backbone, mode
    else:
        choice.tried = [{"name": names[0], "accuracy": float("nan"), "win_rate": None, "against": None, "kept": True}]
    choice.seconds = round(time.perf_counter() - started, 2)
    log.info("%s", choice.line())
    return choice


def _seconds_per_image(setup: steps.Setup, n: int = 8) -> float:
    """Forward time per image of this network on this machine (decoding is the same for every candidate)."""
    size = setup.model.preprocess.input_size
    x = torch.rand(n, 3, int(size[0]), int(size[1]))
    features_of_images(setup.model, x[:2], setup.runtime)  # warm-up
    t = time.perf_counter()
    features_of_images(setup.model, x, setup.runtime)
    return (time.perf_counter() - t) / n
