"""What decides what a training run learns, as one frozen object: ``TrainConfig``.

``train`` takes it, the run folder keeps it (``model.json``'s ``config``), fine-tuning checkpoints carry it and
``resume`` reads it back, so the resumed run is the one that was started. Importing this loads no torch.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .._options import option
from ..errors import ConfigError
from ..models.defaults import DEFAULT_ACCEPT, DEFAULT_FEATURES, DEFAULT_METHOD, FEATURE_MODES, SCORE_METHODS
from ..train.config import FinetuneConfig, ProbeConfig

STRATEGIES = ("probe", "finetune", "auto")
AUTO_BUDGET_S = 15 * 60.0  # what ``auto`` may spend in all when no budget is given
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
MAX_VIEWS = 3  # len(features.views.VIEWS): flip, two shifted crops (a test keeps them equal; that module loads torch)
# Fine-tuning fields whose default changed after runs were checkpointed: what a checkpoint that lacks them did.
FINETUNE_BEFORE = {"train_size_ratio": 1.0, "ema_epochs": 0.0}

Weights = Union[str, Path, Mapping[str, Union[str, Path]], None]


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe with working defaults; ``transferlab train``'s flags are built from the fields that
    carry help (``_options.option``), so each setting is declared once.

    Strategies:
        ``probe``: a softmax head on the frozen backbone's cached features, its L2 strength chosen on
        val (else on a holdout of train). Seconds once features are cached.
        ``finetune``: the probe's head, then the backbone unfrozen (``finetune``); validation images held
        out of train judge every epoch, the probe's head included as epoch 0, and the fine-tuned weights
        are kept only when they beat the probe clearly (``finetune.min_win_rate``). Checkpoints are
        deleted once training ends unless ``keep_checkpoints``; an interrupted run keeps them for ``resume``.
        ``auto``: within ``budget`` (default 15 min), the backbone and features chosen by cross-validation
        (``backbone="auto"``, ``run.choose``), then fine-tuning from 1,000 training images, skipped when the
        probe leaves nothing to win; the run records what was tried and why the kept model won.

    Example:
        ``tl.train(ds, TrainConfig(strategy="auto", budget="10m"))`` or ``tl.train(ds, strategy="auto", budget="10m")``.
    """

    backbone: str | None = None  # a bundled or timm model name; "A+B" concatenates their features; "auto" chooses among
    # the bundled ones by cross-validation (run.choose); None: "auto" for strategy auto, else DEFAULT_BACKBONE
    weights: Weights = None  # a local weights file, or for "A+B" {member name: file}; None: bundled / timm's own
    features: str = option(DEFAULT_FEATURES, "multi: also pool the last 3 stages (textures, medical, industrial images).", choices=FEATURE_MODES)
    strategy: str = option("probe", (
        "probe: linear head on frozen, cached features (seconds); finetune: probe, then the backbone unfrozen, kept only if validation "
        "shows it beats the probe; auto: backbone and features chosen by cross-validation, then finetune from 1,000 training images, within --budget."), choices=STRATEGIES)
    budget: float | str | None = None  # most training time: seconds, or "90s", "5m", "1h"; auto without one: AUTO_BUDGET_S
    seed: int = 0  # training's random numbers (the split's seed travels with the data set)
    precision: str = option("auto", "Compute precision (auto: bf16 where the hardware has it, else fp32).", choices=PRECISIONS)
    batch_size: int | None = option(None, "Images per forward pass [default: 16 per CPU core, 64 on GPU].")
    probe: ProbeConfig = ProbeConfig()  # how the head is fitted
    views: int = option(0, (
        "Also fit the head on the features of N extra views of each training photo (1: mirrored; 2, 3: and two shifted crops), computed "
        "once and cached; 0: off (measured on the development suite: BENCHMARKS.md)."))
    # --views 1: +0.79 points on the development suite's selection splits (worst set -0.22), +0.41 on the test splits; it
    # meets the adoption rule, but switching changes the README's transcripts (docs/benchmarks/recipes-tried.md)
    finetune: FinetuneConfig = FinetuneConfig()  # phase 2's recipe (strategies finetune and auto)
    accept: float = option(DEFAULT_ACCEPT, "'None of these' threshold: the share of validation images it accepts (0.99: reject less).")
    ood_score: str = option(DEFAULT_METHOD, "In-distribution score (BENCHMARKS.md compares them).", flag="--ood-score", choices=SCORE_METHODS)
    exclude: tuple[str, ...] = field(default=())  # files left out of every split (e.g. a reviewed audit --fix-list)
    keep_checkpoints: bool = option(False, "finetune: keep checkpoint.pt (and the previous epoch's) after training ends.", flag="--keep-checkpoints")

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # normalised once, so the saved config and every reader see plain values
        set_(self, "weights", _weights_json(self.weights))
        set_(self, "budget", parse_duration(self.budget))
        set_(self, "exclude", tuple(str(Path(p).absolute()) for p in self.exclude))
        self._check()

    def _check(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"expected strategy in {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.features not in FEATURE_MODES:
            raise ConfigError(f"expected features in {', '.join(FEATURE_MODES)}, got {self.features!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"expected precision in {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 0.0 < self.accept <= 1.0:
            raise ConfigError(f"expected --accept in (0, 1], the share of in-distribution images to accept, got {self.accept} — e.g. --accept 0.95")
        if not (isinstance(self.views, int) and 0 <= self.views <= MAX_VIEWS):
            raise ConfigError(f"expected --views from 0 to {MAX_VIEWS} (extra views per training photo), got {self.views!r}")
        if self.ood_score not in SCORE_METHODS:
            raise ConfigError(f"expected --ood-score in {', '.join(SCORE_METHODS)}, got {self.ood_score!r}")

    @property
    def tuning(self) -> bool:
        """Whether phase 2 (fine-tuning) runs at all."""
        return self.strategy != "probe"

    def deadline_s(self) -> float | None:
        """The time fine-tuning may take, or None for no limit."""
        if self.budget is not None:
            return float(self.budget)
        return AUTO_BUDGET_S if self.strategy == "auto" else None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` (field names of this class); an unknown name is a one-line error."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown training setting(s) {', '.join(unknown)} — expected some of {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what ``model.json`` and fine-tuning checkpoints hold."""
        out = dataclasses.asdict(self)
        out["exclude"] = list(self.exclude)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Read ``to_dict``'s output back, from any version: fields it lacks take what runs did before they existed."""
        values = dict(values)
        values.setdefault("views", 0)  # runs made before views existed fitted their photos alone, whatever the default becomes
        probe = values.pop("probe", None) or {}
        tuned = values.pop("finetune", None) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{k: v for k, v in values.items() if k in known},
            probe=ProbeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in probe.items() if k in _names(ProbeConfig)}),
            finetune=FinetuneConfig(**{**FINETUNE_BEFORE, **{k: v for k, v in tuned.items() if k in _names(FinetuneConfig)}}),
        )


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _weights_json(weights: Weights) -> str | dict[str, str] | None:
    if isinstance(weights, Mapping):
        return {name: str(file) for name, file in weights.items()}
    return str(weights) if weights else None


def parse_duration(value: float | str | None) -> float | None:
    """Seconds from 90, "90", "90s", "5m" or "1.5h"; None stays None.

    Raises:
        ConfigError: not a positive duration.
    """
    if value is None:
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", value)
        if not match:
            raise ConfigError(f"expected a time budget such as 90s, 5m or 1h, got {value!r}")
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"expected a positive time budget, got {value!r} — pass e.g. --budget 5m")
    return seconds


def config_from(config: TrainConfig | str | None, changes: Mapping[str, Any], legacy: Iterable[tuple[str, str]] = (("finetune_config", "finetune"),)) -> TrainConfig:
    """``train``'s arguments as one config: ``config`` (or a backbone name, 0.1's second argument) with
    ``changes`` applied; 0.1's keyword names (``finetune_config``) are accepted under their new names."""
    changes = dict(changes)
    for old, new in legacy:
        if old in changes:
            changes[new] = changes.pop(old)
    if isinstance(config, str):
        changes.setdefault("backbone", config)
        config = None
    return (config or TrainConfig()).replace(**changes)
