"""``report.html`` for a run: one self-contained file (images embedded) a user can send to a colleague.

Sections: data summary with the skipped files, training curves, metrics, confusion matrix, top losses,
correct examples per class, Grad-CAM samples, and (on request, it takes minutes) each class's ideal
image. It reads what ``train``/``evaluate`` wrote into the run folder (``metrics.json``,
``predictions.csv``, the history in ``model.json``) and the photos those files name, when they exist.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .._types import Progress
from .._io import atomic_write_bytes
from ..data import open_rgb
from ..data.decode import BadImageError
from ..errors import ConfigError
from ..evaluate import plot_confusion_matrix, plot_history
from ..inspect.gradcam import gradcam
from ..inspect.hooks import forward_eval
from ..run.run import Run

log = logging.getLogger(__name__)

SECTIONS = ("data", "curves", "metrics", "confusion", "calibration", "top-losses", "correct", "gradcam", "adversarial", "dreams")


def report(
    run: Run,
    out: Path | str | None = None,
    *,
    examples_per_class: int = 3,
    top_losses: int = 8,
    gradcam_samples: int = 6,
    dream_steps: int = 0,
    progress: Progress | None = None,
) -> Path:
    """Write the run's report as one HTML file (default ``RUN/report.html``) and return its path.

    Args:
        dream_steps: > 0 adds each class's ideal image (``inspect.dream`` with that many steps).

    Raises:
        ConfigError: no output path for a model without a run folder.
    """
    if out is None:
        if run.directory is None:
            raise ConfigError("this model has no run folder — give an output file (--out report.html)")
        out = run.directory / "report.html"
    out = Path(out)
    rows = _predictions(run)
    metrics = _metrics(run)
    parts = [
        _section("data", "Data", _data_summary(run)),
        *_audit(run),
        _section("curves", "Training", _curves(run)),
        _section("metrics", "Metrics", _metrics_table(metrics)),
        _section("confusion", "Confusion matrix", _confusion(metrics, run.classes)),
        _section("calibration", "Confidence: calibration and “none of these”", _calibration(run, metrics)),
        _section("top-losses", "Top losses: the most confident mistakes", _gallery(run, _worst(rows, top_losses), show_truth=True)),
        _section("correct", "Correct examples per class", _gallery(run, _best_per_class(rows, examples_per_class), show_truth=False)),
        _section("gradcam", "Grad-CAM: where the model looked", _gradcams(run, rows, gradcam_samples, progress)),
        _section("adversarial", "Fooling it: one adversarial example", _adversarial(run, rows)),
    ]
    if dream_steps > 0:
        parts.append(_section("dreams", "Ideal image of each class", _dreams(run, dream_steps, progress)))
    title = f"{run.record.task(run.classes)} — transferlab report: {run.record.backbone.name} on {Path(run.record.data.root if run.record.data else '?').name}"
    atomic_write_bytes(out, _page(title, run, "".join(parts)).encode())
    return out


# -- reading the run folder ---------------------------------------------------------------------------
def _metrics(run: Run) -> dict[str, Any]:
    path = run.directory / "metrics.json" if run.directory else None
    if path and path.is_file():
        return json.loads(path.read_text())
    return dict(run.record.metrics or {})


def _predictions(run: Run) -> list[dict[str, Any]]:
    path = run.directory / "predictions.csv" if run.directory else None
    if not path or not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{**r, "prob_predicted": float(r["prob_predicted"]), "prob_true": float(r["prob_true"]), "correct": r["correct"] == "1"} for r in csv.DictReader(f)]


def _worst(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    wrong = [r for r in rows if not r["correct"]]
    return sorted(wrong, key=lambda r: r["prob_true"])[:n]


def _best_per_class(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    picked: list[dict[str, Any]] = []
    for cls in dict.fromkeys(r["true"] for r in rows):
        right = sorted((r for r in rows if r["correct"] and r["true"] == cls), key=lambda r: -r["prob_true"])
        picked += right[:n]
    return picked


# -- HTML pieces --------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value))


def _img(image: Image.Image, alt: str, fmt: str = "JPEG") -> str:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, fmt, quality=85) if fmt == "JPEG" else image.save(buf, fmt)
    return f'<img alt="{_e(alt)}" src="data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _figure(fig: Any, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return _img(Image.open(buf), alt, "PNG")


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}"><h2>{_e(title)}</h2>{body}</section>\n'


def _none(text: str) -> str:
    return f'<p class="none">{_e(text)}</p>'


def _data_summary(run: Run) -> str:
    data = run.record.data
    if not data:
        return _none("This model was not trained by transferlab on a dataset (a pretrained backbone), so there is no data summary.")
    counts = data.counts
    splits = sorted({s for per in counts.values() if isinstance(per, dict) for s in per})
    head = "".join(f"<th>{_e(s)}</th>" for s in splits) or "<th>images</th>"
    body = "".join(
        f"<tr><td>{_e(c)}</td>" + ("".join(f"<td>{per.get(s, 0)}</td>" for s in splits) if isinstance(per, dict) else f"<td>{per}</td>") + "</tr>"
        for c, per in counts.items()
    )
    skipped, _ = data.problems()
    items = "".join(f"<li><code>{_e(path)}</code>: {_e(reason)}</li>" for path, reason in skipped[:200])
    more = f"<li>… and {len(skipped) - 200} more</li>" if len(skipped) > 200 else ""
    skipped_html = f"<h3>Skipped files ({len(skipped)})</h3>" + (f"<ul class='skipped'>{items}{more}</ul>" if skipped else _none("No file was skipped: every image decoded."))
    return (
        f"<p>Folder <code>{_e(data.root)}</code>, layout <b>{_e(data.layout)}</b>, {len(counts)} classes.</p>"
        f"<table><tr><th>class</th>{head}</tr>{body}</table>{skipped_html}"
    )


def _audit(run: Run) -> list[str]:
    """The latest ``transferlab audit`` of the run's data folder, when one was run (else no section)."""
    from ..audit import latest_audit
    from ..audit.page import SORT_JS, section_html

    root = (run.record.data or {}).get("root")
    result = latest_audit(root) if root else None
    if result is None:
        return []
    same = "" if result.fingerprint == (run.record.data or {}).get("fingerprint") else (
        " The data has changed since (files added, removed, relabelled or left out with --exclude), so some findings may no longer apply.")
    summary = ", ".join(f"{n} {k}" for k, n in result.summary().items())
    head = f"<p>Audit of {result.n_images} images through {_e(result.backbone)}: {_e(summary)}.{_e(same)} <code>transferlab audit</code> writes the full list.</p>"
    return [_section("audit", "Audit of the data", f"<script>{SORT_JS}</script>{head}{section_html(result, limit=24)}")]


def _curves(run: Run) -> str:
    history = run.record.finetune.history if run.record.finetune else None
    parts = []
    if run.record.decision:
        parts.append(f"<p>Strategy <b>{_e(run.record.strategy)}</b>, kept <b>{_e(run.record.kept)}</b>: {_e(run.record.decision)}.</p>")
    for phase in run.record.phases:
        chose = f", choices on {phase.choose} ({_e(phase.choose_from)})" if phase.choose else ""
        parts.append(f"<p>Phase <b>{_e(phase.name)}</b>: learnt from {phase.fit} images{chose}.</p>")
    if history:
        parts.append(_figure(plot_history(history), "training curves: loss and accuracy per epoch"))
    validation = run.record.validation
    if validation:
        rows = "".join(f"<tr><td>{v['l2']:g}</td><td>{v['accuracy']:.3f}</td><td>{v['log_loss']:.3f}</td></tr>" for v in validation)
        chosen = run.record.chosen_l2
        parts.append(f"<p>Linear head on frozen features: validation score per L2 strength (chosen: {_e(chosen)}).</p>"
                     f"<table><tr><th>L2</th><th>accuracy</th><th>log loss</th></tr>{rows}</table>")
    return "".join(parts) or _none("No training history recorded (a pretrained backbone).")


def _metrics_table(metrics: dict[str, Any]) -> str:
    if not metrics:
        return _none("No evaluation recorded — run `transferlab evaluate RUN DATA --out RUN`.")
    keys = [k for k in ("split", "held_out", "n", "accuracy", "balanced_accuracy", "macro_f1", "top5_accuracy", "log_loss", "species_accuracy", "seen_in_training", "skipped") if k in metrics]
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else _e(v)  # noqa: E731
    summary = "".join(f"<tr><th>{_e(k)}</th><td>{fmt(metrics[k])}</td></tr>" for k in keys)
    per = metrics.get("per_class") or []
    per_rows = "".join(f"<tr><td>{_e(r['class'])}</td><td>{r['precision']:.3f}</td><td>{r['recall']:.3f}</td><td>{r['f1']:.3f}</td><td>{r['support']}</td></tr>" for r in per)
    per_html = f"<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{per_rows}</table>" if per else ""
    return f"<table class='summary'>{summary}</table>{per_html}"


def _confusion(metrics: dict[str, Any], classes: list[str]) -> str:
    cm = metrics.get("confusion_matrix")
    if not cm:
        return _none("No confusion matrix recorded.")
    return _figure(plot_confusion_matrix(np.array(cm), classes), "confusion matrix")


def _calibration(run: Run, metrics: dict[str, Any]) -> str:
    c, i = metrics.get("calibration"), metrics.get("in_distribution") or {}
    if not c:
        return _none("No calibration recorded (a run made before transferlab calibrated) — `transferlab calibrate RUN DATA`, then `transferlab evaluate RUN DATA --out RUN`.")
    text = (f"<p>Probabilities are temperature-scaled (T = {c['temperature']:.3f}, fitted on {_e(c.get('fitted_on') or 'the validation images')}). On the {_e(metrics.get('split', 'held-out'))} "
            f"split: expected calibration error {c['ece_before']:.4f} → <b>{c['ece_after']:.4f}</b> ({c['bins']} bins), log-loss {c['log_loss_before']:.4f} → {c['log_loss_after']:.4f}.</p>")
    if i.get("threshold") is not None:
        text += (f"<p>“None of these”: a photo whose {_e(i['method'])} score is below {i['threshold']:.4g} is reported as none of the {len(run.classes)} classes. "
                 f"The threshold accepts {100 * i['accept']:.0f} % of the validation images; here it accepts {100 * i['accepted']:.1f} % of the {_e(metrics.get('split', ''))} images.</p>")
    else:
        text += _none("No 'none of these' threshold: every photo gets a class. Add one with `transferlab calibrate RUN DATA`.")
    png = run.directory / "calibration.png" if run.directory else None
    return text + (_img(Image.open(png), "reliability diagram", "PNG") if png and png.is_file() else "")


def _thumb(path: str, size: int = 200) -> Image.Image | None:
    try:
        image = open_rgb(Path(path), draft=(size, size))
    except BadImageError:
        return None
    image.thumbnail((size, size))
    return image


def _gallery(run: Run, rows: list[dict[str, Any]], show_truth: bool) -> str:
    cards = []
    for r in rows:
        image = _thumb(r["path"])
        if image is None:
            continue
        caption = (f"true <b>{_e(r['true'])}</b> ({r['prob_true']:.2f})<br>predicted <b>{_e(r['predicted'])}</b> ({r['prob_predicted']:.2f})"
                   if show_truth else f"<b>{_e(r['true'])}</b> ({r['prob_true']:.2f})")
        cards.append(f"<figure>{_img(image, Path(r['path']).name)}<figcaption>{caption}</figcaption></figure>")
    if not cards:
        return _none("None to show (no mistakes, no predictions recorded, or the photos are no longer there).")
    return f"<div class='gallery'>{''.join(cards)}</div>"


def _gradcams(run: Run, rows: list[dict[str, Any]], n: int, progress: Progress | None) -> str:
    picked = [r for r in rows if r["correct"]][:: max(1, len([r for r in rows if r["correct"]]) // max(n, 1))][:n]
    picked += _worst(rows, 2)
    cards = []
    for done, r in enumerate(picked):
        if progress:
            progress("grad-cam", done, len(picked))
        try:
            cam = gradcam(run.model, run.load_image(r["path"]))
        except BadImageError:
            continue
        cards.append(f"<figure>{_img(cam.overlay(0.45), 'Grad-CAM of ' + Path(r['path']).name)}"
                     f"<figcaption>{_e(Path(r['path']).name)}: {_e(cam.class_name)} ({cam.probability:.2f}); true {_e(r['true'])}</figcaption></figure>")
    return f"<div class='gallery'>{''.join(cards)}</div>" if cards else _none("No photos to explain (no predictions recorded).")


def _adversarial(run: Run, rows: list[dict[str, Any]]) -> str:
    """The most confidently right photo, pushed by PGD (L∞ 4/255) towards the class it is least unlike."""
    from ..attacks import AttackConfig
    from ..attacks.single import attack_image

    for r in sorted((r for r in rows if r["correct"]), key=lambda r: -r["prob_predicted"]):
        try:
            x = run.load_image(r["path"])
        except BadImageError:
            continue
        with torch.no_grad():
            probs = torch.softmax(forward_eval(run.model, x).float(), 1)[0]
        probs[run.classes.index(r["true"])] = -1
        attack = attack_image(run.model, x, AttackConfig(), target=int(probs.argmax()))
        return (f"<p>{_e(Path(r['path']).name)}, a {_e(r['true'])} the model was sure of, changed by at most 4/255 per pixel: "
                f"now <b>{_e(attack.record['adversarial']['class'])}</b> ({attack.record['adversarial']['prob']:.2f}). "
                f"<code>transferlab attack</code> makes more.</p>{_figure(attack.figure(), 'adversarial example')}")
    return _none("No correctly classified photo to attack (no predictions recorded, or the photos are no longer there).")


def _dreams(run: Run, steps: int, progress: Progress | None) -> str:
    from ..inspect.dream import DreamConfig, dream

    cards = []
    for i, name in enumerate(run.classes[:50]):
        if progress:
            progress("dreams", i, min(len(run.classes), 50))
        d = dream(run.model, i, DreamConfig(steps=steps))
        cards.append(f"<figure>{_img(d.to_pil(), 'ideal image of ' + name, 'PNG')}<figcaption>{_e(name)} (p={d.probability:.2f})</figcaption></figure>")
    return f"<div class='gallery'>{''.join(cards)}</div>"


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.2rem .6rem;text-align:left}
.gallery{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;width:210px;font-size:.85rem}figure img{max-width:200px;border-radius:4px}
section>img{max-width:100%}.none{color:#777;font-style:italic}.skipped{font-size:.85rem}
"""


def _page(title: str, run: Run, body: str) -> str:
    r = run.record
    facts = f"backbone <b>{_e(r.backbone.name)}</b>, strategy <b>{_e(r.strategy)}</b>, {len(run.classes)} classes, created {_e(r.created or '?')}, transferlab {_e(r.transferlab_version or '?')}"
    nav = " · ".join(f'<a href="#{k}">{k}</a>' for k in ("data", "audit", *SECTIONS[1:]) if f'id="{k}"' in body)  # audit: when one was run
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>{_e(title)}</h1><p>{facts}</p><nav>{nav}</nav>{body}</body></html>\n")
