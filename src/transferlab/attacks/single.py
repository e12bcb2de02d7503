"""One image attacked: the record a user reads (JSON), its figure, its PNG, and the transfer check."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models.state import device_of, eval_mode
from .._io import atomic_write_bytes
from .._io import write_json
from ..models.classes import top_k
from ..models.images import png_bytes
from .base import margins
from .config import AttackConfig
from .metrics import l2, linf, psnr, ssim


@dataclass
class AdversarialExample:
    """Before and after of one attacked image; ``record`` is what ``save`` writes as JSON."""

    original: torch.Tensor  # (3, H, W) in [0, 1]
    adversarial: torch.Tensor  # (3, H, W) in [0, 1], on the 8-bit grid
    probs_before: torch.Tensor  # (C,)
    probs_after: torch.Tensor  # (C,)
    classes: list[str]
    record: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    def __rich__(self) -> str:
        """Before and after, the verdict, the size of the change, and the transfer checks (as ``transferlab attack`` prints them)."""
        from rich.markup import escape

        r = self.record
        goal = f"→ {r['target']['class']}" if r["targeted"] else f"away from {r['label']['class']}"
        verdict = "[green]success[/]" if r["success"] else "[red]failed[/]"
        lines = [
            escape(f"{r['original']['class']} ({r['original']['prob']:.2f}) {goal}: ") + f"{verdict} in {r['steps']} step(s), {r['seconds']:.1f} s; now "
            + escape(f"{r['adversarial']['class']} ({r['adversarial']['prob']:.2f})") + _flagged(r),
            f"L∞ {r['linf_255']:.0f}/255, L2 {r['l2']:.3f}, PSNR {r['psnr_db']:.1f} dB, SSIM {r['ssim']:.4f}",
        ]
        for t in r.get("transfer", []):
            fooled = {True: "[red]fooled[/]", False: "[green]not fooled[/]", None: "no such class"}[t["fooled"]]
            lines.append(escape(f"  {t['model']}: {t['original']['class']} → {t['adversarial']['class']} ({t['adversarial']['prob']:.2f}): ") + fooled)
        if self.files:
            lines.append(f"wrote {', '.join(escape(str(p)) for p in self.files.values())}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Original, perturbation (amplified as in ``figure``) and adversarial side by side, under what ``__rich__`` says."""
        from .. import _html
        from ..models.images import to_pil

        r = self.record
        delta = (self.adversarial - self.original).float()
        peak = float(delta.abs().max())
        gain = 0.5 / peak if peak > 0 else 1.0  # the largest change at full contrast, grey = no change
        width = min(320, int(self.original.shape[-1]))  # three side by side fit a notebook's width
        images = "".join((
            _html.img(to_pil(self.original), "original", width, f"original: {r['original']['class']} {r['original']['prob']:.2f}"),
            _html.img(to_pil((delta * gain + 0.5).clamp(0, 1)), "perturbation", width, f"perturbation ×{gain:.0f} (max {peak * 255:.0f}/255)"),
            _html.img(to_pil(self.adversarial), "adversarial", width, f"adversarial: {r['adversarial']['class']} {r['adversarial']['prob']:.2f}"),
        ))
        return _html.block(images, _html.markup(self.__rich__()), title=f"{r['method'].upper()} {r['norm']} ε={r['eps_255']:.3g}/255")

    def success(self) -> bool:
        return bool(self.record["success"])

    def figure(self):
        """original | amplified perturbation | adversarial, and the top-5 bars before and after."""
        from .figure import plot_attack

        r = self.record
        goal = f"target {r['target']['class']}" if r["targeted"] else f"away from {r['label']['class']}"
        title = f"{r['method'].upper()} {r['norm']} ε={r['eps_255']:.3g}/255, {goal}: {'success' if r['success'] else 'failed'} in {r['steps']} step(s); PSNR {r['psnr_db']:.1f} dB, SSIM {r['ssim']:.3f}"
        return plot_attack(self.original, self.adversarial, self.probs_before, self.probs_after, self.classes, title)

    def save(self, png: Path | str, figure: bool = True) -> dict[str, Path]:
        """Write the adversarial PNG, ``<stem>_figure.png`` and ``<stem>.json`` next to it; returns the paths."""
        from ..evaluate.plots import save_figure

        png = Path(png)
        if png.suffix.lower() != ".png":
            png = png.with_suffix(".png")  # lossy formats would undo the attack
        png.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(png, png_bytes(self.adversarial))
        self.files = {"adversarial": png}
        if figure:
            self.files["figure"] = save_figure(self.figure(), png.with_name(png.stem + "_figure.png"))
        self.files["report"] = png.with_suffix(".json")
        self.record["files"] = {k: str(v) for k, v in self.files.items()}
        write_json(self.files["report"], self.record)
        return self.files


def _flagged(r: dict[str, Any]) -> str:
    """The clause saying ``predict`` answers "none of these" for the adversarial image, when it does."""
    p = r.get("predict")
    if not p or p["in_distribution"]:
        return ""
    return (f", but `predict` answers 'none of these': its {p['method']} score {p['score']:.3g} is below the run's "
            f"threshold {p['threshold']:.3g} (the image no longer looks like the training photos)")


def attack_image(
    model: nn.Module,
    image: torch.Tensor,
    config: AttackConfig = AttackConfig(),
    *,
    target: int | None = None,
    label: int | None = None,
) -> AdversarialExample:
    """Attack one image: towards class ``target`` if given, else away from ``label`` (default: the
    model's own prediction on the image).

    Args:
        model: an ``ImageClassifier`` (pixels in [0, 1] -> logits; ``model.classes`` names them).
        image: (1, 3, H, W) or (3, H, W) in [0, 1], on the 8-bit grid (as ``Run.load_image`` gives).

    Shape:
        image (3, H, W) or (1, 3, H, W) in [0, 1].
    """
    x = image if image.ndim == 4 else image.unsqueeze(0)
    classes = list(model.classes)
    probs_before = _probabilities(model, x)[0]
    predicted = int(probs_before.argmax())
    targeted = target is not None
    goal = int(target if target is not None else predicted if label is None else label)
    result = config.build(model, targeted=targeted)(x, goal)
    adv, x_cpu = result.images.cpu(), x.float().cpu()
    probs_after = result.logits[0].softmax(0).cpu()
    after = int(probs_after.argmax())
    record: dict[str, Any] = {
        "method": config.method,
        "norm": config.norm,
        "eps": config.eps,
        "eps_255": config.eps * 255,
        "targeted": targeted,
        "config": config.to_dict(),
        "original": {"class": classes[predicted], "index": predicted, "prob": float(probs_before[predicted])},
        "adversarial": {"class": classes[after], "index": after, "prob": float(probs_after[after])},
        "success": bool(result.success[0]),
        "margin": float(margins(result.logits[:1].float(), torch.tensor([goal], device=result.logits.device), targeted)[0]),
        **_distances(adv, x_cpu),
        "steps": int(result.steps[0]),
        "seconds": round(result.seconds, 4),
        "top5_before": top_k(probs_before, classes, decimals=6),
        "top5_after": top_k(probs_after, classes, decimals=6),
    }
    entry: dict[str, Any] = {"class": classes[goal], "index": goal}
    if targeted:
        entry["prob_before"] = float(probs_before[goal])
    record["target" if targeted else "label"] = {**entry, "prob_after": float(probs_after[goal])}
    return AdversarialExample(x_cpu[0], adv[0], probs_before, probs_after, classes, record)


def _probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model``'s class probabilities for ``x`` (fp32, on the CPU), in eval mode. Shape: x (B, 3, H, W) -> (B, C)."""
    with eval_mode(model), torch.no_grad():
        return model(x.to(device_of(model)).float()).float().softmax(1).cpu()


def _distances(adv: torch.Tensor, x: torch.Tensor) -> dict[str, float]:
    """How far the adversarial image is from the original, by each measure the report gives. Shape: (1, 3, H, W) each."""
    return {
        "linf": float(linf(adv, x)[0]),
        "linf_255": round(float(linf(adv, x)[0]) * 255, 4),
        "l2": float(l2(adv, x)[0]),
        "psnr_db": float(psnr(adv, x)[0]),
        "ssim": float(ssim(adv, x)[0]),
    }


def transfer(model: nn.Module, report: AdversarialExample, name: str = "") -> dict[str, Any]:
    """Does the adversarial image of ``report`` also fool ``model``? Both images go through ``model``'s
    own evaluation crop and resize (as ``predict`` would show them), from the attacked pixels.

    The attack reached another model when its prediction changes (untargeted) or becomes the target
    class, matched by name (targeted; ``None`` when that model has no class of this name).
    """
    from ..models.photo import PhotoClassifier

    pair = torch.stack([report.original, report.adversarial])
    if hasattr(model, "preprocess"):
        model = PhotoClassifier(model)
    probs = _probabilities(model, pair)
    classes = list(model.classes)
    before, after = int(probs[0].argmax()), int(probs[1].argmax())
    out: dict[str, Any] = {
        "model": name,
        "original": {"class": classes[before], "prob": float(probs[0, before])},
        "adversarial": {"class": classes[after], "prob": float(probs[1, after])},
        "prediction_changed": before != after,
    }
    if report.record["targeted"]:
        wanted = report.record["target"]["class"]
        hit = classes.index(wanted) if wanted in classes else None
        out["target_prob"] = None if hit is None else float(probs[1, hit])
        out["fooled"] = None if hit is None else after == hit
    else:
        out["fooled"] = before != after
    return out


AttackReport = AdversarialExample  # 0.1's name
