"""Which backbone for these photos? Score several on the user's own images with cached features and a fast probe.

Every backbone is scored by k-fold cross-validation of the linear probe on the images ``train`` may learn
from or choose on (train + val under ``data.roles``; the split a run reports is never touched). Inside each
fold the probe picks its L2 strength on a holdout of the training folds only, so the score is an honest
estimate, not the best of a grid. Features come from the on-disk cache; each backbone's scores and its
measured speed are cached too, so adding one to the list costs only that one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._io import atomic_write_bytes
from .._types import Progress
from ..data import Dataset, Sample
from ..data.roles import split_roles
from ..errors import ConfigError, DataError
from ..features import FeatureCache, cache_key, extract_features, pick_runtime
from ..features.cache import default_cache_dir
from ..features.runtime import Runtime
from ..models import ImageClassifier, create_backbone
from ..models.backbones import check_weights_available, combine_backbones
from ..models.bundled import BUNDLED
from ..models.combined import FEATURE_MODES
from ..train import ProbeConfig
from ..train.crossval import Step, confidence, ladder, out_of_fold, repeats_for, required_win_rate

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

SCORE_VERSION = "compare-v4"  # bump when the scoring changes: cached scores are recomputed
SPEED_IMAGES = 160  # images timed when no extraction of this backbone has been timed yet (above the tracing threshold)
# The ImageNet-1k head's mean top-1 probability on the user's photos, for efficientnet_lite0 (other heads are
# calibrated differently: lite1 gives 0.32 where lite0 gives 0.46). Dev suite, train+val images (BENCHMARKS.md):
# clothing 0.51, Caltech-101 0.49, Oxford 0.46 | textures 0.34 | sign digits 0.21, brain MRI 0.21, magnetic tiles 0.13.
# Fine-tuning 300 images gained +6.1 and +2.6 points on sign digits and MRI, at most +0.9 on the three photo sets.
NEAR_IMAGENET = 0.45  # at or above: ImageNet-like photos, the probe on pooled features is usually enough
FAR_FROM_IMAGENET = 0.25  # below: far from ImageNet; fine-tuning (or --features multi) may matter
REFERENCE = "efficientnet_lite0"  # the head the thresholds were set on
CLEAR_WIN = 0.9  # a slower backbone is recommended only when the paired test is this sure it is better (the keep rule's 90 %)


@dataclass
class BackboneScore:
    """One row of the leaderboard: a backbone (or a combination "A+B") and its k-fold probe scores."""

    name: str  # as asked for; "A+B" for a combination
    features: str  # "pooled" | "multi"
    accuracy: float  # mean over folds of out-of-fold accuracy
    accuracy_sd: float  # spread (standard deviation) over folds
    balanced_accuracy: float
    balanced_accuracy_sd: float
    folds: int
    n_images: int
    images_per_s: float  # feature extraction, decode included, measured on this machine
    params_m: float  # backbone parameters (head excluded), millions
    feature_dim: int
    input_size: int  # image side the backbone sees
    weights_mb: float  # backbone tensors as fp32
    arch: str = ""
    weights: str = ""  # where its weights came from
    imagenet_confidence: float | None = None  # mean top-1 probability of the ImageNet head (None: no such head)
    members: list[str] = field(default_factory=list)  # a combination's backbones
    repeats: int = 1  # fold assignments the scores are averaged over
    fold_accuracy: list[float] = field(default_factory=list, repr=False)  # per repeat and fold, the same folds for every row of one comparison

    @property
    def combined(self) -> bool:
        return bool(self.members)

    def cells(self) -> tuple[str, ...]:
        """The leaderboard row as text, in ``Comparison._header``'s order."""
        conf = "" if self.imagenet_confidence is None else f"{self.imagenet_confidence:.2f}"
        return (self.name, f"{self.accuracy:.3f} ± {self.accuracy_sd:.3f}", f"{self.balanced_accuracy:.3f}", f"{self.images_per_s:,.0f}", f"{self.params_m:.1f}",
                str(self.feature_dim), str(self.input_size), f"{self.weights_mb:.0f}", conf)


@dataclass
class Comparison:
    """The leaderboard (``rows`` best first) with the recommendation and where the data sits."""

    rows: list[BackboneScore]
    best: str
    recommended: str
    recommendation: str  # one line
    distance: str  # one line: how far from ImageNet the photos are, and what that means
    data: dict[str, Any]  # root, images scored, splits used, images left untouched, unreadable files
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)

    def row(self, name: str) -> BackboneScore:
        return next(r for r in self.rows if r.name == name)

    def __rich__(self) -> Any:
        """The leaderboard table, what was scored, the recommendation and the distance from ImageNet."""
        from rich.console import Group
        from rich.markup import escape
        from rich.table import Table

        table = Table(*self._header(), title=f"{self.rows[0].features} features")
        for column in table.columns[1:]:
            column.no_wrap = True  # numbers stay whole; long (combined) names fold instead
        table.columns[0].overflow = "fold"
        table.columns[0].min_width = min(24, max(len(r.name) for r in self.rows if not r.members))
        for r in self.rows:
            name, *numbers = r.cells()
            table.add_row(escape(name), *numbers, style="bold" if r.name == self.recommended else None)
        parts: list[Any] = [table, escape(self._scored_line()), f"[bold]{escape(self.recommendation)}[/]", escape(self.distance)]
        if self.files:
            parts.append(escape(f"wrote {', '.join(str(p) for p in self.files.values())}"))
        return Group(*parts)

    def _repr_html_(self) -> str:
        """What ``__rich__`` shows (the leaderboard, the recommended row in bold, what was scored, the
        recommendation and the distance from ImageNet), for Jupyter."""
        from .. import _html

        bold = next((i for i, r in enumerate(self.rows) if r.name == self.recommended), None)
        return _html.block(
            _html.table(self._header(), [r.cells() for r in self.rows], bold=bold, caption=f"{self.rows[0].features} features"),
            _html.text(self._scored_line()),
            f"<b>{_html.text(self.recommendation)}</b>",
            _html.text(self.distance),
            _html.text(f"wrote {', '.join(str(p) for p in self.files.values())}") if self.files else "",
            title="Which backbone?",
        )

    def _header(self) -> tuple[str, ...]:
        return ("backbone", f"{self.rows[0].folds}-fold acc", "balanced", "img/s", "params M", "dim", "px", "MB", "IN conf")

    def _scored_line(self) -> str:
        d = self.data
        return f"scored on {d['images']} {'+'.join(d['splits'])} images of {d['classes']} classes; {d['untouched']} held-out images untouched ({self.seconds:.1f} s)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [_row_dict(r) for r in self.rows], "best": self.best, "recommended": self.recommended,
            "recommendation": self.recommendation, "distance": self.distance, "data": self.data, "seconds": round(self.seconds, 2),
        }

    def figure(self) -> Figure:
        """Accuracy against images/s, one labelled point per backbone, fold spread as error bars."""
        from ..evaluate.plots import plot_tradeoff

        return plot_tradeoff(
            [r.name for r in self.rows], [r.images_per_s for r in self.rows], [r.accuracy for r in self.rows],
            [r.accuracy_sd for r in self.rows], highlight=self.recommended,
            title=f"{Path(self.data['root']).name}: {self.rows[0].folds}-fold probe accuracy on {self.data['images']} images",
        )

    def save(self, out: Path | str) -> dict[str, Path]:
        """Write ``compare.json``, ``compare.csv`` and ``compare.png`` into ``out``."""
        from ..evaluate.plots import save_figure

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        files = {"json": out / "compare.json", "csv": out / "compare.csv", "plot": out / "compare.png"}
        atomic_write_bytes(files["json"], (json.dumps(self.to_dict(), indent=2) + "\n").encode())
        buf = io.StringIO()
        columns = [f for f in _row_dict(self.rows[0]) if f != "members"]
        writer = csv.writer(buf)
        writer.writerow(columns)
        for r in self.rows:
            writer.writerow([getattr(r, c) for c in columns])
        atomic_write_bytes(files["csv"], buf.getvalue().encode())
        save_figure(self.figure(), files["plot"])
        self.files = files
        return files


def compare(
    dataset: Dataset,
    backbones: Sequence[str] = tuple(sorted(BUNDLED)),
    *,
    weights: dict[str, Path | str] | None = None,
    features: str = "pooled",
    folds: int = 5,
    combine: bool = False,
    seed: int = 0,
    cache_dir: Path | str | None = None,
    precision: str = "auto",
    batch_size: int | None = None,
    probe: ProbeConfig = ProbeConfig(),
    out: Path | str | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Score ``backbones`` on ``dataset`` by k-fold probe accuracy; recommend one.

    Args:
        backbones: bundled names (offline) or timm names; a name in ``weights`` uses that local file.
        weights: backbone name -> .safetensors/.pth state dict (names not in ``backbones`` are added).
        features: ``pooled`` or ``multi`` (see ``models.combined.member_features``).
        folds: k of the cross-validation.
        combine: also score the concatenated features of the best two and best three.
        out: folder for ``compare.json``, ``compare.csv`` and ``compare.png``.
        progress: called with (backbone name, done, total) while extracting.

    Raises:
        ConfigError: bad options; BackboneError: unknown name, unreadable weights, no weights offline;
        DataError: too few images to cross-validate.
    """
    started = time.perf_counter()
    weights = dict(weights or {})
    names = list(dict.fromkeys([*backbones, *weights]))
    _check_options(names, weights, features, folds)
    samples = _scored_samples(dataset, folds)
    runtime = pick_runtime(precision=precision)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    (root / "compare").mkdir(parents=True, exist_ok=True)
    scored: dict[str, tuple[BackboneScore, dict[str, torch.Tensor], dict[str, int]]] = {}
    failed: dict[Path, str] = {}
    for name in names:
        cb = (lambda d, t, n=name: progress(n, d, t)) if progress else None
        scored[name] = _score_backbone(name, weights.get(name), features, samples, runtime, root, batch_size, folds, seed, probe, failed, cb)
    rows = [row for row, _, _ in scored.values()]
    if combine:
        rows += _combined_rows(rows, scored, folds, seed, probe)
    rows.sort(key=lambda r: (-r.accuracy, -r.images_per_s))
    best, recommended, line, steps = _recommend(rows)
    data = {
        "root": str(dataset.root), "images": rows[0].n_images, "classes": len(dataset.classes), "splits": sorted({s.split for s in samples}),
        "untouched": len(dataset.samples) - len(samples), "unreadable": {str(p): r for p, r in failed.items()}, "folds": folds, "seed": seed,
        "ladder": [asdict(s) for s in steps],
    }
    result = Comparison(rows, best.name, recommended.name, line, _distance_line(recommended, rows), data=data, seconds=time.perf_counter() - started)
    if out is not None:
        result.save(out)
    return result


def _check_options(names: list[str], weights: dict[str, Path | str], features: str, folds: int) -> None:
    """Raise ConfigError for bad options and BackboneError for missing weights, before minutes of extraction."""
    if not names:
        raise ConfigError("expected at least one backbone, got none — pass e.g. -b efficientnet_lite0 -b efficientnet_lite1")
    if features not in FEATURE_MODES:
        raise ConfigError(f"expected --features in {', '.join(FEATURE_MODES)}, got {features!r}")
    if folds < 2:
        raise ConfigError(f"expected --folds of at least 2, got {folds}")
    for name in names:
        check_weights_available(name, weights.get(name))


def _combined_rows(
    rows: list[BackboneScore], scored: dict[str, tuple[BackboneScore, dict[str, torch.Tensor], dict[str, int]]], folds: int, seed: int, probe: ProbeConfig,
) -> list[BackboneScore]:
    """Rows for the concatenated features of the best two and the best three backbones (as many as there are)."""
    ranked = sorted(rows, key=lambda r: -r.accuracy)
    labels = scored[ranked[0].name][2] if ranked else {}
    return [
        _score_combination(ranked[:k], {r.name: scored[r.name][1] for r in ranked[:k]}, labels, folds, seed, probe)
        for k in (2, 3)[: max(len(rows) - 1, 0)]
    ]


def _scored_samples(dataset: Dataset, folds: int) -> list[Sample]:
    """Train + val as ``data.roles`` assigns them: never the split a run reports."""
    roles = split_roles(dataset)
    samples = [*roles.train, *roles.val]
    counts = np.bincount([s.label for s in samples], minlength=len(dataset.classes))
    present = counts[counts > 0]
    if len(present) < 2:
        raise DataError(f"expected train/val images of at least 2 classes in {dataset.root}, got {len(present)} — add images of another class")
    if present.min() < folds:
        short = [f"{c} ({n})" for c, n in zip(dataset.classes, counts.tolist()) if 0 < n < folds]
        shown = ", ".join(short[:8]) + (f" and {len(short) - 8} more" if len(short) > 8 else "")
        raise DataError(f"{folds}-fold scoring needs at least {folds} train/val images in every class of {dataset.root}; {len(short)} have fewer: {shown} — add images or pass a smaller --folds")
    return samples


def _score_backbone(
    name: str, weights: Path | str | None, mode: str, samples: list[Sample], runtime: Runtime, root: Path, batch_size: int | None,
    folds: int, seed: int, probe: ProbeConfig, failed: dict[Path, str], progress: Any,
) -> tuple[BackboneScore, dict[str, torch.Tensor], dict[str, int]]:
    """The backbone's row (scores from the score cache when nothing changed), its features and labels by content hash."""
    bb = create_backbone(name, weights)
    imagenet = _imagenet_head(bb.model)  # before ``multi`` drops it
    if mode != "pooled":
        bb = combine_backbones([bb], mode)
    model = bb.model
    cache = FeatureCache(root, cache_key(model, runtime))
    paths = [s.path for s in samples]
    ex = extract_features(model, paths, cache=cache, runtime=runtime, batch_size=batch_size, progress=progress)
    failed.update(ex.failed)
    by_hash = {ex.hashes[i]: row for i, row in zip(ex.ok, ex.features)}
    labels = {ex.hashes[i]: samples[i].label for i in ex.ok}
    speed = _speed(model, paths, ex, runtime, batch_size, root / "compare" / f"speed-{cache.dir.name}-{runtime.device.type}.json")
    key = _digest([SCORE_VERSION, cache.dir.name, sorted(labels.items()), folds, seed, asdict(probe)])
    score_file = root / "compare" / f"score-{key}.json"
    cached = _read_json(score_file)
    order = sorted(labels)
    if cached is None:
        x = torch.stack([by_hash[h] for h in order])
        y = np.array([labels[h] for h in order])
        cached = _kfold(x, y, folds, seed, probe)
        cached["imagenet_confidence"] = _imagenet_confidence(imagenet, x)
        atomic_write_bytes(score_file, json.dumps(cached).encode())
    head_ids = {id(p) for p in model.head.parameters()}
    params = [p for p in model.net.parameters() if id(p) not in head_ids]
    tensors = [t for t in model.net.state_dict(keep_vars=True).values() if id(t) not in head_ids and t.is_floating_point()]
    row = BackboneScore(
        name=name, features=mode, **cached, n_images=len(labels), images_per_s=speed,
        params_m=round(sum(p.numel() for p in params) / 1e6, 3), feature_dim=model.feature_dim, input_size=int(model.preprocess.input_size[0]),
        weights_mb=round(sum(t.numel() * 4 for t in tensors) / 1e6, 1), arch=bb.arch, weights=bb.weights,
    )
    return row, by_hash, labels


def _score_combination(
    members: list[BackboneScore], feats: dict[str, dict[str, torch.Tensor]], labels: dict[str, int], folds: int, seed: int, probe: ProbeConfig
) -> BackboneScore:
    """The concatenated features of ``members`` scored like one backbone (on the images all of them could read)."""
    common = sorted(set.intersection(*(set(f) for f in feats.values())) & set(labels))
    x = torch.cat([torch.stack([feats[m.name][h] for h in common]) for m in members], dim=1)  # (N, sum D)
    y = np.array([labels[h] for h in common])
    scores = _kfold(x, y, folds, seed, probe)
    return BackboneScore(
        name="+".join(m.name for m in members), features=members[0].features, **scores, n_images=len(common),
        images_per_s=round(1 / sum(1 / m.images_per_s for m in members), 1),  # one image through every member
        params_m=round(sum(m.params_m for m in members), 3), feature_dim=sum(m.feature_dim for m in members),
        input_size=max(m.input_size for m in members), weights_mb=round(sum(m.weights_mb for m in members), 1),
        arch="+".join(m.arch for m in members), weights=" + ".join(m.weights for m in members), members=[m.name for m in members],
    )


def _kfold(x: torch.Tensor, y: np.ndarray, folds: int, seed: int, probe: ProbeConfig) -> dict[str, Any]:
    """Out-of-fold scores of the probe (``train.crossval.out_of_fold``, repeated on small sets) with each fold's
    accuracy, for the recommendation's paired test (the folds depend only on the labels and the seed)."""
    repeats = repeats_for(len(y))
    oof = out_of_fold(x, y, folds, repeats, seed, probe)
    return {**oof.summary(), "repeats": repeats, "fold_accuracy": [round(a, 6) for a in oof.fold_accuracy]}


def _imagenet_head(model: ImageClassifier) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The backbone's own ImageNet-1k head (weight, bias), if it has one."""
    head = model.head
    if model.net.num_classes != 1000 or not isinstance(head, torch.nn.Linear) or head.bias is None:
        return None
    return head.weight.detach().float().clone(), head.bias.detach().float().clone()


def _imagenet_confidence(head: tuple[torch.Tensor, torch.Tensor] | None, x: torch.Tensor) -> float | None:
    """Mean top-1 probability of the backbone's own ImageNet-1k head on the photos' pooled features."""
    if head is None:
        return None
    weight, bias = head
    pooled = x[:, -weight.shape[1]:]  # ``multi`` rows end with the pooled pre-logits the head reads
    probs = torch.softmax(pooled.float() @ weight.T + bias, dim=1)
    return round(float(probs.max(1).values.mean()), 4)


def _speed(model: ImageClassifier, paths: list[Path], ex: Any, runtime: Runtime, batch_size: int | None, file: Path) -> float:
    """Images/s of extraction: this run's when it computed enough images, else the last one measured, else timed now."""
    if ex.computed >= SPEED_IMAGES:
        speed = ex.computed / ex.seconds
    else:
        stored = _read_json(file)
        if stored is not None:
            return float(stored["images_per_s"])
        sample = paths[:: max(1, len(paths) // SPEED_IMAGES)][:SPEED_IMAGES]
        timed = extract_features(model, sample, cache=None, runtime=runtime, batch_size=batch_size)
        speed = len(timed.ok) / timed.seconds
    speed = round(speed, 1)
    atomic_write_bytes(file, json.dumps({"images_per_s": speed, "precision": runtime.precision}).encode())
    return speed


def _recommend(rows: list[BackboneScore], min_win_rate: float = CLEAR_WIN) -> tuple[BackboneScore, BackboneScore, str, list[Step]]:
    """The best accuracy, and the pick of ``train.crossval.ladder`` (the rule ``train --backbone auto`` uses):
    the most accurate of the rows the corrected k-fold t-test is ``min_win_rate`` sure beat the fastest one on
    the same folds; none: the fastest."""
    best = rows[0]
    by_cost = sorted(rows, key=lambda r: (-r.images_per_s, -r.accuracy))
    same = [r.fold_accuracy if r.n_images == by_cost[0].n_images else [] for r in by_cost]  # other images: other folds, no pairing
    i, steps = ladder([r.name for r in by_cost], same, min_win_rate, best.folds)
    pick = by_cost[i]
    score = lambda r: f"{r.accuracy:.3f} ± {r.accuracy_sd:.3f}"  # noqa: E731
    train = f" — train it with `transferlab train DATA --backbone {pick.name}{' --features multi' if pick.features == 'multi' else ''}`"
    fastest = by_cost[0]
    if pick is best:
        clear = "the fastest too" if best is fastest else f"clearly better than the fastest, {fastest.name} ({score(fastest)})"
        return best, pick, f"use {best.name}: the best {best.folds}-fold accuracy ({score(best)}), {clear}{train}", steps
    sure = confidence(fastest.fold_accuracy, best.fold_accuracy, best.folds) if best.n_images == fastest.n_images else 0.0
    return best, pick, (
        f"use {pick.name}: {score(pick)}; {best.name} scores {score(best)} but is not clearly better than {fastest.name} "
        f"({100 * sure:.0f}% sure, under the {100 * required_win_rate(min_win_rate, len(rows) - 1):.0f}% required), at {pick.images_per_s / best.images_per_s:.1f}x its speed{train}"
    ), steps


def _row_dict(row: BackboneScore) -> dict[str, Any]:
    """A row as saved: everything but the per-fold accuracies."""
    out = asdict(row)
    out.pop("fold_accuracy")
    return out


def _distance_line(recommended: BackboneScore, rows: list[BackboneScore]) -> str:
    """What the ImageNet head's confidence on these photos says about probe versus fine-tuning."""
    scored = [r for r in rows if r.imagenet_confidence is not None]
    row = next((r for r in scored if r.name == REFERENCE), recommended if recommended in scored else (scored or [None])[0])
    if row is None:
        return "distance from ImageNet: unknown (no backbone here has an ImageNet-1k head)"
    c = row.imagenet_confidence
    if c >= NEAR_IMAGENET:
        verdict = f"close to ImageNet (>= {NEAR_IMAGENET}): the probe on pooled features is likely enough"
    elif c >= FAR_FROM_IMAGENET:
        verdict = f"between ({FAR_FROM_IMAGENET}-{NEAR_IMAGENET}): fine-tuning may or may not help; --strategy auto tries it"
    else:
        verdict = f"far from ImageNet (< {FAR_FROM_IMAGENET}): fine-tuning may matter; try --strategy auto and --features multi"
    caveat = "" if row.name == REFERENCE else f" (thresholds set on {REFERENCE}'s head)"
    return f"ImageNet head's mean confidence on these photos ({row.name}): {c:.2f} — {verdict}{caveat}"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
