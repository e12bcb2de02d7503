"""The run record: everything ``model.json`` says about how a run was made, as a typed, versioned object.

Version 1 (transferlab 0.1) files hold the same top-level fields minus ``phases`` and ``decision``;
version 2 lacks ``confidence`` (temperature and "none of these" threshold: such runs predict with the
raw softmax and reject nothing). All read into the same class, so every reader sees one shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePath
from typing import Any

RECORD_VERSION = 3


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
    """How answers are presented (``model.json``'s ``serve``, written by ``serve --threshold X --save-threshold``)."""

    unsure_below: float = 0.5  # "not sure": an accepted photo whose top calibrated probability is below this


@dataclass
class RunRecord:
    """``model.json`` minus the model's own fields (classes, preprocessing), which the model carries."""

    backbone: dict[str, Any]  # name, arch, weights, fingerprint
    strategy: str  # "probe" | "finetune" | "auto" | "pretrained" (an ImageNet backbone, not trained here)
    transferlab_version: str = ""
    created: str | None = None
    kept: str | None = None  # what the run ended as: "probe" or "finetune" (they differ for auto, and for
    # finetune when validation did not show fine-tuning beating the probe)
    decision: str | None = None  # one line: what was tried and why the kept model won (for a probe run, when
    # fine-tuning might do better, a line saying so)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    validation: list[dict[str, float]] = field(default_factory=list)  # the probe's L2 search
    data: dict[str, Any] | None = None  # root, layout, counts, skipped files, warnings, split options
    species: dict[str, str] | None = None
    timing: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None  # on the held-out split: split, held_out, n, accuracy, ...
    finetune: dict[str, Any] | None = None  # history, best_epoch, win_rate, ...
    phases: list[Phase] = field(default_factory=list)
    confidence: dict[str, Any] | None = None  # temperature, in-distribution score and threshold (models.confidence)
    serve: ServeSettings | None = None  # the "not sure" setting of predict and the page (None: the default)
    extra: dict[str, Any] = field(default_factory=dict)  # fields this version does not know (kept as read)
    record_version: int = RECORD_VERSION

    @classmethod
    def from_dict(cls, meta: dict[str, Any]) -> RunRecord:
        """Read a ``model.json`` dict of any version (unknown fields are kept in ``extra``)."""
        known = {f.name for f in fields(cls)} - {"extra", "phases", "record_version"}
        ignored = {"format", "format_version", "classes", "preprocess", "network", "record_version"}
        values = {k: v for k, v in meta.items() if k in known}
        values.setdefault("backbone", {})
        values.setdefault("strategy", "probe")
        phases = [Phase(**p) for p in meta.get("phases") or []]
        extra = {k: v for k, v in meta.items() if k not in known and k not in ignored and k != "phases"}
        serve = values.pop("serve", None)
        serve = ServeSettings(**{f.name: serve[f.name] for f in fields(ServeSettings) if f.name in serve}) if serve else None
        record = cls(**values, phases=phases, serve=serve, extra=extra, record_version=int(meta.get("record_version", 1)))
        if record.kept is None and record.strategy in ("probe", "finetune"):
            record.kept = record.strategy  # 0.1 runs kept what they were asked to train
        return record

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (``extra`` merged back at the top level), newest version."""
        out = {k: v for k, v in asdict(self).items() if k != "extra" and v is not None}
        out["record_version"] = RECORD_VERSION
        return {**out, **self.extra}

    def task(self, classes: list[str]) -> str:
        """The question the run answers, in words for page titles ("Pet nursery: which breed is it?" only
        for breed data; "clothing: which of the 10 classes is it?" for a folder named clothing)."""
        data = self.data or {}
        if data.get("layout") == "oxford" and data.get("label") == "species":
            return "Cat or dog?"
        if self.species or (data.get("layout") == "oxford" and data.get("label", "breed") == "breed"):
            return "Pet nursery: which breed is it?"
        if self.strategy == "pretrained":
            return f"Which of the {len(classes)} ImageNet classes is it?"
        name = PurePath(str(data.get("root", ""))).name
        question = f"{classes[0]} or {classes[1]}?" if len(classes) == 2 else f"which of the {len(classes)} classes is it?"
        return f"{name}: {question}" if name else question[0].upper() + question[1:]

    def seen_hashes(self) -> set[str]:
        """Every image any phase learnt from or made a choice on."""
        return {h for p in self.phases for h in (*p.fit_hashes, *p.choose_hashes)}


def short_hash(digest: str) -> str:
    """The form hashes take in the record: 16 hex digits are plenty to tell a few million photos apart."""
    return digest[:16]
