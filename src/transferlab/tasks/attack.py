"""``transferlab attack`` and ``robustness`` on a run and photo files: attack a photo at its own size and
judge it through ``predict``'s own path, check transfer to other backbones, robustness over a dataset.
The attacks themselves are ``transferlab.attacks``, which only sees tensors."""

from __future__ import annotations

import dataclasses
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from ..attacks import AttackConfig
from ..attacks.single import AdversarialExample, attack_image, transfer
from ..models.classes import top_k
from ..models.images import png_bytes
from ..models.photo import PhotoClassifier
from ..attacks.robustness import Progress, Robustness
from ..attacks.robustness import robustness as _robustness
from ..data import Dataset
from ..errors import DataError, RunError
from ..run.run import Run, open_model


def _as_run(model: Run | str | Path, weights: Path | str | None = None) -> Run:
    return model if isinstance(model, Run) else open_model(model, weights)


def attack(
    model: Run | str | Path,
    image: Path | str,
    target: str | int | None = None,
    *,
    label: str | int | None = None,
    config: AttackConfig = AttackConfig(),
    out: Path | str | None = None,
    transfer_to: Sequence[str] = (),
    weights: Path | str | None = None,
) -> AdversarialExample:
    """Attack one photo at its own resolution, so that the saved PNG fools ``transferlab predict``.

    The evaluation crop and resize are part of the attacked network (``models.PhotoClassifier``), and
    success is judged by reading the 8-bit PNG back through exactly the path ``predict`` takes (its
    decode, resize and precision). When that judgement disagrees with the attack's own (rounding at
    the 8-bit resize), the attack is run again with a wider logit margin (1, then 3), at most twice.
    Targeted towards ``target`` (a class name, fuzzy: "tabby cat", or index) if given; else away from
    ``label`` (default: the model's own prediction). With ``out``, writes the adversarial PNG, its
    figure and JSON report (see ``AdversarialExample.save``). ``transfer_to`` names backbones or run folders
    that are shown the same adversarial photo (results in ``record["transfer"]``).
    """
    run = _as_run(model, weights)
    photo = run.load_photo(image)
    net = PhotoClassifier(run.model)
    goal = {"target": None if target is None else run.class_index(target), "label": None if label is None else run.class_index(label)}
    with tempfile.TemporaryDirectory() as tmp:
        before = run.predict_proba([Path(image)], cache_dir=tmp)[0]
        for attempt, margin in enumerate(dict.fromkeys((config.confidence, max(config.confidence, 1.0), max(config.confidence, 3.0))), 1):
            report = attack_image(net, photo, dataclasses.replace(config, confidence=margin), **goal)
            _judge_through_predict(run, report, torch.as_tensor(before), Path(tmp), attempt)
            if report.success or not report.record["success_in_attack"]:
                break
    report.record["image"] = str(image)
    report.record["model"] = str(model if not isinstance(model, Run) else (model.directory or model.record.backbone.name))
    if transfer_to:
        report.record["transfer"] = [transfer(_as_run(name).model, report, str(name)) for name in transfer_to]
    if out is not None:
        report.save(out)
    return report


def _judge_through_predict(run: Run, report: AdversarialExample, before: torch.Tensor, tmp: Path, attempt: int) -> None:
    """Replace the attack's own verdict by ``predict``'s on the saved PNG (and its view of the original)."""
    png = tmp / f"attempt-{attempt}.png"
    png.write_bytes(png_bytes(report.adversarial))
    scored = run.predict_scored([png], cache_dir=tmp)
    if not scored.ok:
        raise DataError(f"the adversarial PNG could not be read back: {scored.failed.get(png, 'unknown reason')}")
    after = torch.as_tensor(scored.probs[0])
    r, classes = report.record, report.classes
    top = int(after.argmax())
    r["success_in_attack"] = r["success"]
    r["success"] = top == r["target"]["index"] if r["targeted"] else top != r["label"]["index"]
    r["judged_by"] = "transferlab predict on the saved PNG"
    # The top class can be fooled while the run's "none of these" check still flags the image as unlike its training photos.
    inside = bool(scored.accepted[0])
    r["predict"] = {"label": classes[top] if inside else None, "in_distribution": inside,
                    "score": float(scored.scores[0]) if scored.threshold is not None else None, "threshold": scored.threshold, "method": scored.method}
    r["attempts"] = attempt
    b = int(before.argmax())
    r["original"] = {"class": classes[b], "index": b, "prob": float(before[b])}
    r["adversarial"] = {"class": classes[top], "index": top, "prob": float(after[top])}
    r["top5_before"], r["top5_after"] = top_k(before.cpu(), classes, decimals=6), top_k(after.cpu(), classes, decimals=6)
    if r["targeted"]:
        r["target"].update(prob_before=float(before[r["target"]["index"]]), prob_after=float(after[r["target"]["index"]]))
    else:
        r["label"]["prob_after"] = float(after[r["label"]["index"]])
    report.probs_before, report.probs_after = before, after


class _Photos(Sequence):
    """Dataset photos decoded on demand at their own size: (3, H, W) in [0, 1] on the 8-bit grid."""

    def __init__(self, paths: list[Path], run: Run) -> None:
        self.paths, self.run = paths, run

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):  # type: ignore[override]
        return self.run.load_photo(self.paths[i])[0]


def robustness(
    model: Run | str | Path,
    dataset: Dataset,
    eps: Sequence[float] = (0, 1 / 255, 2 / 255, 4 / 255, 8 / 255),
    config: AttackConfig = AttackConfig(),
    *,
    targeted: bool = False,
    split: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    out: Path | str | None = None,
    batch_size: int = 8,
    weights: Path | str | None = None,
    progress: Progress | None = None,
) -> Robustness:
    """Accuracy of ``model`` under attack at each ε on ``split`` of ``dataset`` (default test, else val,
    else all); with ``targeted``, the source -> target success matrix between the dataset's classes.
    Each photo is attacked at its own resolution, through the evaluation crop and resize inside the
    network (``models.PhotoClassifier``), and judged on its 8-bit pixels: what ``predict`` would say of
    the saved file, to within one grey level of Pillow's resize. Where the run has a "none of these"
    threshold, the curve also says what share of the fooled images ``predict`` would reject as such.

    ``limit`` keeps at most that many images per class (drawn with ``seed``), since targeted matrices cost
    images x classes attacks. With ``out``, writes CSVs and figures there.
    """
    run = _as_run(model, weights)
    samples, _ = dataset.evaluation_split(split)
    missing = sorted(set(dataset.classes) - set(run.classes))
    if missing:
        raise RunError(f"the data has classes the model does not know: {', '.join(missing[:10])} — use a run trained on these classes")
    if limit is not None:
        by_class: dict[int, list] = {}
        for s in samples:
            by_class.setdefault(s.label, []).append(s)
        rng = random.Random(seed)
        samples = [s for group in by_class.values() for s in (rng.sample(group, limit) if len(group) > limit else group)]
    if not samples:
        raise DataError(f"no images to attack in {dataset.root}")
    labels = [run.classes.index(dataset.classes[s.label]) for s in samples]
    # photos at their own size through the evaluation crop and resize: what `predict` would say of the files
    flag = (lambda adv: torch.tensor([not row["in_distribution"] for row in run.predict(adv, k=1)])) if run.confidence.rejects else None
    result = _robustness(PhotoClassifier(run.model), _Photos([s.path for s in samples], run), labels, eps, config, targeted=targeted, batch_size=batch_size, progress=progress, flag=flag)
    if out is not None:
        result.save(out)
    return result
