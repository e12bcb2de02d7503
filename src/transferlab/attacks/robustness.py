"""Robustness over many images: accuracy under attack per budget, and which class turns into which.

Images fooled at a budget ε₁ are fooled at every ε₂ > ε₁ too (the same adversarial lies in the larger
ball), so each budget only attacks the images still standing: the curve is monotone and later budgets
cost less. The numbers are upper bounds on true robust accuracy, as for any attack.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._types import Progress
from ..models.state import eval_mode
from .._io import atomic_write_bytes
from .base import Attack, AttackResult
from .config import AttackConfig


CURVE_COLUMNS = ("eps", "eps_255", "n", "clean_accuracy", "robust_accuracy", "attack_success_rate", "fooled_flagged_rate", "attacked", "mean_steps", "seconds")


@dataclass
class SuccessMatrix:
    """Targeted attacks between the classes of a dataset."""

    classes: list[str]  # names, in the order of the rows/columns
    eps: list[float]  # budgets tried, ascending
    n: np.ndarray  # (K,) correctly classified images per source class (those attacked)
    success: np.ndarray  # (len(eps), K, K): fraction of source images turned into the target within ε
    median_eps: np.ndarray  # (K, K): smallest ε turning at least half of a source's images (NaN: none tried did)

    @staticmethod
    def success_key(eps: float) -> str:
        """CSV column of the success rate within ``eps``."""
        return f"success_at_{eps * 255:.4g}/255"

    def rows(self) -> list[dict[str, Any]]:
        out = []
        for i, source in enumerate(self.classes):
            for j, target in enumerate(self.classes):
                if i == j:
                    continue
                row: dict[str, Any] = {"source": source, "target": target, "n": int(self.n[i])}
                row.update({self.success_key(e): float(self.success[k, i, j]) for k, e in enumerate(self.eps)})
                med = self.median_eps[i, j]
                row["median_min_eps"] = "" if np.isnan(med) else float(med)
                row["median_min_eps_255"] = "" if np.isnan(med) else round(float(med) * 255, 4)
                out.append(row)
        return out


@dataclass
class Robustness:
    """Accuracy under attack at each budget, and optionally the targeted success matrix."""

    curve: list[dict[str, Any]]  # one row per ε, keys CURVE_COLUMNS
    matrix: SuccessMatrix | None = None
    config: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def __rich__(self) -> Any:
        """The accuracy-under-attack table, the source → target table when targeted, and the files written."""
        from rich.console import Group
        from rich.markup import escape
        from rich.table import Table

        flags = any(r["fooled_flagged_rate"] != "" for r in self.curve)
        caption = "flagged: the share of the images fooled so far that `predict` answers 'none of these' for" if flags else None
        table = Table("ε", "accuracy", "attack success", *(["flagged"] if flags else []), "attacked", "mean steps", "seconds", caption=caption)
        for r in self.curve:
            flagged = [] if not flags else ["—" if r["fooled_flagged_rate"] == "" else f"{r['fooled_flagged_rate']:.3f}"]
            table.add_row(f"{r['eps_255']:.4g}/255", f"{r['robust_accuracy']:.3f}", f"{r['attack_success_rate']:.3f}", *flagged, str(r["attacked"]), f"{r['mean_steps']:.1f}", f"{r['seconds']:.1f}")
        parts: list[Any] = [table]
        if self.matrix is not None:
            m = self.matrix
            pairs = Table("source → target", "n", f"success at {m.eps[-1] * 255:.4g}/255", "median minimal ε")
            for row in m.rows():
                med = row["median_min_eps_255"]
                pairs.add_row(escape(f"{row['source']} → {row['target']}"), str(row["n"]), f"{row[m.success_key(m.eps[-1])]:.2f}", "—" if med == "" else f"{med:.4g}/255")
            parts.append(pairs)
        if self.files:
            parts.append(f"wrote {', '.join(escape(str(p)) for p in self.files.values())}")
        return Group(*parts)

    def save(self, directory: Path | str) -> dict[str, Path]:
        """Write robustness.csv + robustness.png (and success_matrix.csv/.png when targeted)."""
        from ..evaluate.plots import save_figure
        from .figure import plot_robustness, plot_success_matrix

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.files["curve_csv"] = _write_csv(directory / "robustness.csv", self.curve, CURVE_COLUMNS)
        eps = [r["eps"] for r in self.curve]
        title = f"{self.config.get('method', '').upper()} {self.config.get('norm', '')}, n={self.curve[0]['n']}"
        self.files["curve_png"] = save_figure(plot_robustness(eps, [r["robust_accuracy"] for r in self.curve], title), directory / "robustness.png")
        if self.matrix is not None:
            rows = self.matrix.rows()
            self.files["matrix_csv"] = _write_csv(directory / "success_matrix.csv", rows, tuple(rows[0]) if rows else ("source", "target"))
            m = self.matrix
            fig = plot_success_matrix(m.success[-1], m.median_eps, m.classes, m.eps[-1])
            self.files["matrix_png"] = save_figure(fig, directory / "success_matrix.png")
        return self.files


def _write_csv(path: Path, rows: list[dict[str, Any]], columns: Sequence[str]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())
    return path


def _batches(indices: Sequence[int], size: int, shape_of=None):  # noqa: ANN001
    """Chunks of at most ``size`` positions; with ``shape_of`` (position -> image size), a chunk holds
    images of one size only (photos at their own resolution), in order within each size."""
    groups: dict[object, list[int]] = {}
    for i in indices:
        groups.setdefault(shape_of(i) if shape_of else None, []).append(i)
    for group in groups.values():
        for start in range(0, len(group), size):
            yield group[start : start + size]


def _shapes(images: Sequence[torch.Tensor]):  # noqa: ANN202
    """position -> (H, W) of ``images``, asked once per image (lazy sequences decode on access)."""
    seen: dict[int, tuple[int, int]] = {}

    def shape_of(i: int) -> tuple[int, int]:
        if i not in seen:
            seen[i] = tuple(images[i].shape[-2:])
        return seen[i]

    return shape_of


def _stack(images: Sequence[torch.Tensor], idx: Sequence[int]) -> torch.Tensor:
    return torch.stack([images[i] if images[i].ndim == 3 else images[i][0] for i in idx])


def _predict(model: nn.Module, images: Sequence[torch.Tensor], batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    preds = torch.empty(len(images), dtype=torch.long)
    with eval_mode(model):
        with torch.no_grad():
            for idx in _batches(range(len(images)), batch_size, _shapes(images)):
                preds[idx] = model(_stack(images, idx).to(device)).argmax(1).cpu()
    return preds


def robustness(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    labels: Sequence[int],
    eps: Sequence[float],
    config: AttackConfig = AttackConfig(),
    *,
    targeted: bool = False,
    targets: Sequence[int] | None = None,
    batch_size: int = 8,
    progress: Progress | None = None,
    flag: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Robustness:
    """Untargeted accuracy under attack at each ε; with ``targeted``, also the success matrix between
    the classes ``targets`` (default: the distinct ``labels``).

    Args:
        model: pixels in [0, 1] -> logits.
        images: (3, H, W) tensors in [0, 1] on the 8-bit grid; any sequence (it may load lazily), and
            of any sizes the model takes (photos at their own resolution for a ``PhotoClassifier``).
        labels: true class index of each image, in the model's classes.
        eps: budgets; ε = 0 gives the clean accuracy.
        config: the attack (its ``eps`` is replaced by each budget).
        batch_size: images attacked together (8 to 16 is fastest on CPUs).
        flag: adversarial images (B, 3, H, W) -> (B,) bool, True where a "none of these" check rejects
            them; the curve's ``fooled_flagged_rate`` is then the share of the images fooled so far that
            it rejects (else "").
    """
    eps = sorted({float(e) for e in eps})
    y = torch.as_tensor(list(labels), dtype=torch.long)
    clean = _predict(model, images, batch_size) == y
    standing = clean.nonzero()[:, 0].tolist()
    shape_of, tally = _shapes(images), _Tally(flag)
    curve = []
    for k, e in enumerate(eps):
        started, attacked, steps = time.perf_counter(), len(standing), []
        if e > 0 and standing:
            standing, steps = _attack_standing(config.build(model, targeted=False, eps=e), images, y, standing, batch_size, shape_of, tally)
        curve.append({
            "eps": e, "eps_255": round(e * 255, 4), "n": len(y), "clean_accuracy": float(clean.float().mean()),
            "robust_accuracy": len(standing) / len(y), "attack_success_rate": 1 - len(standing) / max(int(clean.sum()), 1),
            "fooled_flagged_rate": tally.rate(), "attacked": attacked if e > 0 else 0,
            "mean_steps": float(np.mean(steps)) if steps else 0.0, "seconds": round(time.perf_counter() - started, 3),
        })
        if progress:
            progress("robustness", k + 1, len(eps))
    result = Robustness(curve, config=config.to_dict())
    if targeted:
        result.matrix = success_matrix(model, images, y, clean, [e for e in eps if e > 0] or eps, config, targets, batch_size, progress)
    return result


@dataclass
class _Tally:
    """How many adversarial images were found so far, and how many of them ``flag`` rejects."""

    flag: Callable[[torch.Tensor], torch.Tensor] | None
    fooled: int = 0
    flagged: int = 0

    def add(self, result: AttackResult) -> None:
        won = result.success.cpu()
        if self.flag is not None and won.any():
            self.fooled += int(won.sum())
            self.flagged += int(self.flag(result.images[won].cpu()).sum())

    def rate(self) -> float | str:
        """The share of the fooled images that ``flag`` rejects ("" without a flag or before any is fooled)."""
        return "" if self.flag is None or not self.fooled else self.flagged / self.fooled


def _attack_standing(
    attack: Attack, images: Sequence[torch.Tensor], y: torch.Tensor, standing: list[int], batch_size: int,
    shape_of: Callable[[int], tuple[int, int]], tally: _Tally,
) -> tuple[list[int], list[int]]:
    """Attack the images still classified correctly: those that withstand it, and the steps each attack took."""
    still: list[int] = []
    steps: list[int] = []
    for idx in _batches(standing, batch_size, shape_of):
        result = attack(_stack(images, idx), y[idx])
        steps += result.steps.tolist()
        still += [i for i, ok in zip(idx, result.success.tolist()) if not ok]
        tally.add(result)
    return still, steps


def success_matrix(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    labels: torch.Tensor,
    correct: torch.Tensor,
    eps: Sequence[float],
    config: AttackConfig,
    targets: Sequence[int] | None = None,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> SuccessMatrix:
    """Minimal ε (from ``eps``) turning each correctly classified image into each other class.

    Shape:
        labels, correct (N,).
    """
    classes = sorted(set(labels.tolist())) if targets is None else list(targets)
    pos = {c: i for i, c in enumerate(classes)}
    sources = [i for i in correct.nonzero()[:, 0].tolist() if int(labels[i]) in pos]
    pairs = [(i, t) for i in sources for t in classes if t != int(labels[i])]
    minimal = _minimal_eps(model, images, pairs, eps, config, batch_size, progress)
    n = np.bincount(np.array([pos[int(labels[i])] for i in sources], dtype=int), minlength=len(classes))
    success = np.full((len(eps), len(classes), len(classes)), np.nan)
    median = np.full((len(classes), len(classes)), np.nan)
    for s, t in itertools.permutations(range(len(classes)), 2):
        if n[s]:
            found = np.array([minimal[(i, classes[t])] for (i, tt) in pairs if tt == classes[t] and int(labels[i]) == classes[s]])
            success[:, s, t] = [(found <= e).mean() for e in eps]
            med = float(np.sort(found)[(len(found) - 1) // 2])  # lower median: a budget actually tried
            median[s, t] = med if math.isfinite(med) else np.nan
    names = [model.classes[c] for c in classes] if hasattr(model, "classes") else [str(c) for c in classes]
    return SuccessMatrix(names, list(eps), n, success, median)


def _minimal_eps(
    model: nn.Module, images: Sequence[torch.Tensor], pairs: list[tuple[int, int]], eps: Sequence[float], config: AttackConfig,
    batch_size: int, progress: Progress | None,
) -> dict[tuple[int, int], float]:
    """(image, target) -> the smallest ε of ``eps`` whose targeted attack succeeds (inf: none did); each
    budget attacks only the pairs still open."""
    minimal = {p: math.inf for p in pairs}
    open_pairs = list(pairs)
    shape_of = _shapes(images)
    for k, e in enumerate(eps):
        if e > 0 and open_pairs:
            attack = config.build(model, targeted=True, eps=e)
            still = []  # in the order attacked: the next budget batches them alike
            for chunk in _batches(range(len(open_pairs)), batch_size, lambda c: shape_of(open_pairs[c][0])):
                batch = [open_pairs[c] for c in chunk]
                result = attack(_stack(images, [i for i, _ in batch]), torch.tensor([t for _, t in batch]))
                for pair, ok in zip(batch, result.success.tolist()):
                    if ok:
                        minimal[pair] = e
                    else:
                        still.append(pair)
            open_pairs = still
        if progress:
            progress("targeted", k + 1, len(eps))
    return minimal
