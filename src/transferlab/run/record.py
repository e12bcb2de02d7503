"""The run record: everything ``model.json`` says about how a run was made, as a typed, versioned object.

The only code that reads ``model.json``'s fields by name (with ``run.store``, which reads and writes the
folder). Each section is a dataclass whose attributes are the fields; it is also a read-only mapping over
the JSON it came from, so 0.1 code that wrote ``record.finetune["history"]`` keeps working.

Versions, all read into the same classes: 1 (transferlab 0.1) lacks ``phases`` and ``decision``; 2 lacks
``confidence`` (such runs predict with the raw softmax and reject nothing); 3 lacks ``config`` (the
``TrainConfig``: rebuilt from ``hyperparameters``, ``backbone`` and ``strategy``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePath
from typing import Any

from .._types import AsMapping
from ..models.defaults import DEFAULT_FEATURES
from ..train.config import FinetuneConfig, ProbeConfig
from .config import TrainConfig

RECORD_VERSION = 4


class _Section(AsMapping):
    """A record section: typed attributes, readable as the JSON mapping it is written as; fields this version
    does not know are kept in ``extra`` and written back."""

    extra: dict[str, Any]
    _optional: tuple[str, ...] = ()  # fields written only when set (the rest are written as null, as 0.1 wrote them)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Any:
        values = dict(values or {})
        known = {f.name for f in fields(cls)} - {"extra"}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in values.items() if k in known}, extra={k: v for k, v in values.items() if k not in known})  # type: ignore[call-arg]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}  # type: ignore[arg-type]
        return {**{k: v for k, v in out.items() if v is not None or k not in self._optional}, **self.extra}


@dataclass(eq=False)
class BackboneInfo(_Section):
    """Which network the run was made from."""

    name: str = ""
    arch: str = ""
    weights: str | dict[str, str] | None = None  # the weights' label (bundled package, file, or timm's)
    fingerprint: str | None = None  # of the backbone's weights: the feature cache's key
    features: str | None = None  # "pooled" | "multi"; None in runs before multi-stage features ("pooled")
    extra: dict[str, Any] = field(default_factory=dict)
    _optional = ("fingerprint", "features")

    @property
    def feature_mode(self) -> str:
        return self.features or DEFAULT_FEATURES


@dataclass(eq=False)
class DataInfo(_Section):
    """The data set a run was trained on, enough to load it again with the same splits (``data.load_recorded``)."""

    root: str = ""
    layout: str = ""
    label: str | None = None
    fingerprint: str | None = None  # changes when any file of the data set does
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # class -> split -> images
    skipped: int = 0
    skipped_files: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}
    warnings: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}
    split_options: dict[str, Any] | None = None
    excluded: list[str] | None = None  # files left out of every split (``TrainConfig.exclude``)
    extra: dict[str, Any] = field(default_factory=dict)
    _optional = ("excluded",)

    def problems(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(skipped files, warnings) as (path, reason) pairs."""
        return [(x["path"], x["reason"]) for x in self.skipped_files], [(x["path"], x["reason"]) for x in self.warnings]


@dataclass(eq=False)
class Timing(_Section):
    """Seconds each part of training took (absent parts: None)."""

    backbone_s: float | None = None
    features_s: float | None = None
    images_computed: int | None = None  # features computed, not read from the cache
    head_s: float | None = None
    finetune_s: float | None = None
    total_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _optional = ("backbone_s", "features_s", "images_computed", "head_s", "finetune_s", "total_s")


@dataclass(eq=False)
class FinetuneOutcome(_Section):
    """What phase 2 did: its epochs, the keep decision's evidence, and how it ended."""

    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch, epoch 0 the probe
    best_epoch: int = 0  # the kept epoch (0: the probe)
    best_tuned_epoch: int | None = None  # the best fine-tuned epoch, kept or not
    win_rate: float | None = None  # share of bootstrap resamples of validation in which it beat the probe
    head_refit: bool = False
    retried_after: int | None = None
    retry_reason: float | None = None
    retry_lr: float | None = None
    judged_accuracy: float | None = None
    head_win_rate: float | None = None
    stopped_early: bool = False
    over_budget: bool = False
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Phase:
    """The images one phase of training learnt from (``fit``) and made choices on (``choose``).

    Hashes are the first 16 hex digits of each file's content hash, so the record stays true when
    files are renamed or moved, and ``evaluate`` can tell which images a run has seen.
    """

    name: str  # "head" (the probe's L2 search and fit), "finetune", "head refit"
    fit: int  # how many images it learnt from
    choose: int  # how many images judged its choices (0: none)
    choose_from: str  # "val", "5-fold of train", "holdout of train", "" when nothing was chosen
    fit_hashes: list[str] = field(default_factory=list)
    choose_hashes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ServeSettings:
    """How the web page presents this run's answers."""

    unsure_below: float = 0.5  # "Not sure — maybe X" when the top probability is below this


_SECTIONS = {"backbone": BackboneInfo, "data": DataInfo, "timing": Timing, "finetune": FinetuneOutcome}


@dataclass
class RunRecord:
    """``model.json`` minus the model's own fields (classes, preprocessing), which the model carries."""

    backbone: BackboneInfo
    strategy: str  # "probe" | "finetune" | "auto" | "pretrained" (an ImageNet backbone, not trained here)
    transferlab_version: str = ""
    created: str | None = None
    kept: str | None = None  # what the run ended as: "probe" or "finetune" (they differ for auto, and for
    # finetune when validation did not show fine-tuning beating the probe)
    decision: str | None = None  # one line: what was tried and why the kept model won (for a probe run, when
    # fine-tuning might do better, a line saying so)
    config: TrainConfig | None = None  # the recipe (None for runs before version 4: see ``train_config``)
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # the probe's settings and chosen L2, seed, precision, ...
    validation: list[dict[str, float]] = field(default_factory=list)  # the probe's L2 search
    data: DataInfo | None = None
    species: dict[str, str] | None = None
    timing: Timing = field(default_factory=Timing)
    metrics: dict[str, Any] | None = None  # on the held-out split: split, held_out, n, accuracy, ... (metrics.json's schema)
    finetune: FinetuneOutcome | None = None
    phases: list[Phase] = field(default_factory=list)
    confidence: dict[str, Any] | None = None  # temperature, in-distribution score and threshold (models.confidence)
    choice: dict[str, Any] | None = None  # ``--backbone auto``: the candidates tried, their scores and the kept one (run.choose.Choice)
    serve: ServeSettings | None = None  # the web page's settings (None: the defaults)
    extra: dict[str, Any] = field(default_factory=dict)  # fields this version does not know (kept as read)
    record_version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():  # plain dicts (0.1's way to build a record) become sections
            value = getattr(self, name)
            if value is not None and not isinstance(value, cls):
                setattr(self, name, cls.from_dict(value))

    @classmethod
    def from_dict(cls, meta: dict[str, Any]) -> RunRecord:
        """Read a ``model.json`` dict of any version (unknown fields are kept in ``extra``)."""
        known = {f.name for f in fields(cls)} - {"extra", "phases", "record_version", "config", "serve"}
        ignored = {"format", "format_version", "classes", "preprocess", "network", "record_version", "phases", "config", "serve", "digests"}
        values = {k: v for k, v in meta.items() if k in known}
        values.setdefault("backbone", {})
        values.setdefault("strategy", "probe")
        record = cls(
            **values,
            phases=[Phase(**p) for p in meta.get("phases") or []],
            config=TrainConfig.from_dict(meta["config"]) if meta.get("config") else None,
            serve=ServeSettings(**{k: v for k, v in meta["serve"].items() if k in _names(ServeSettings)}) if meta.get("serve") else None,
            extra={k: v for k, v in meta.items() if k not in known and k not in ignored},
            record_version=int(meta.get("record_version", 1)),
        )
        if record.kept is None and record.strategy in ("probe", "finetune"):
            record.kept = record.strategy  # 0.1 runs kept what they were asked to train
        return record

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (``extra`` merged back at the top level), newest version."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value is None:
                continue
            if isinstance(value, (_Section, TrainConfig)):
                value = value.to_dict()
            elif isinstance(value, ServeSettings):
                value = asdict(value)
            elif f.name == "phases":
                value = [asdict(p) for p in value]
            out[f.name] = value
        out["record_version"] = RECORD_VERSION
        return {**out, **self.extra}

    # -- typed answers to what readers ask ---------------------------------------------------------
    @property
    def train_config(self) -> TrainConfig:
        """The recipe the run was trained with; for runs before version 4, rebuilt from what they recorded."""
        if self.config is not None:
            return self.config
        h = self.hyperparameters
        probe = {f.name: h[f.name] for f in fields(ProbeConfig) if f.name in h}
        tuned = h.get("finetune") or ({} if self.strategy == "probe" else asdict(FinetuneConfig()))
        return TrainConfig.from_dict({
            "backbone": self.backbone.name, "features": self.backbone.feature_mode, "strategy": self.strategy if self.strategy in ("probe", "finetune", "auto") else "probe",
            "seed": int(h.get("seed", 0)), "batch_size": h.get("batch_size"), "budget": h.get("budget_s"), "probe": probe, "finetune": tuned,
            "exclude": (self.data.excluded if self.data else None) or [],
        })

    @property
    def chosen_l2(self) -> float:
        """The L2 strength the head was fitted with (the grid's middle for runs that did not record it)."""
        grid = ProbeConfig().l2_grid
        return float(self.hyperparameters.get("chosen_l2", grid[len(grid) // 2]))

    @property
    def head_refit(self) -> bool:
        return bool(self.finetune and self.finetune.head_refit)

    @property
    def unsure_below(self) -> float:
        return (self.serve or ServeSettings()).unsure_below

    def task(self, classes: list[str]) -> str:
        """The question the run answers, in words for page titles ("Pet nursery: which breed is it?" only
        for breed data; "clothing: which of the 10 classes is it?" for a folder named clothing)."""
        data = self.data or DataInfo()
        if data.layout == "oxford" and data.label == "species":
            return "Cat or dog?"
        if self.species or (data.layout == "oxford" and (data.label or "breed") == "breed"):
            return "Pet nursery: which breed is it?"
        if self.strategy == "pretrained":
            return f"Which of the {len(classes)} ImageNet classes is it?"
        name = PurePath(data.root).name
        question = f"{classes[0]} or {classes[1]}?" if len(classes) == 2 else f"which of the {len(classes)} classes is it?"
        return f"{name}: {question}" if name else question[0].upper() + question[1:]

    def seen_hashes(self) -> set[str]:
        """Every image any phase learnt from or made a choice on."""
        return {h for p in self.phases for h in (*p.fit_hashes, *p.choose_hashes)}


def checkpoint_run(state: Mapping[str, Any]) -> tuple[TrainConfig, DataInfo]:
    """The config and data record a fine-tuning checkpoint was written with (``state["run"]``); an older
    checkpoint's spec and ``state["config"]`` recipe are read into the same config."""
    spec = state["run"]
    if "train_config" in spec:
        return TrainConfig.from_dict(spec["train_config"]), DataInfo.from_dict(spec["data"])
    config = TrainConfig.from_dict({
        "backbone": spec["backbone"], "weights": spec["weights"], "features": spec.get("features", DEFAULT_FEATURES), "strategy": spec.get("strategy", "finetune"),
        "seed": spec["seed"], "precision": spec["precision"], "batch_size": spec["batch_size"], "probe": spec["probe"], "finetune": state["config"],
        "exclude": (spec.get("data") or {}).get("excluded", []), "keep_checkpoints": spec.get("keep_checkpoints", True),
    })
    return config, DataInfo.from_dict(spec["data"])


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def short_hash(digest: str) -> str:
    """The form hashes take in the record: 16 hex digits are plenty to tell a few million photos apart."""
    return digest[:16]
