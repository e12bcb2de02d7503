"""Every public entry point that takes a run or a model leaves the caller's model as it found it.

Regression test: ``export``, ``check_parity`` and serve's ``Predictor`` ran ``run.model.float().cpu().eval()``
and the report ran ``run.model.eval()``, so a caller's model came back in eval mode (and, from export and
serve, converted to float32) after the call; and the eval-mode helpers restored only the top-level mode
flag, setting every submodule alike (a frozen BatchNorm of a fine-tuning caller went back to training).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import transferlab as tl

from .conftest import make_photo, make_photo_folder


@dataclass
class Scene:
    """A freshly loaded run, a photo file and a small dataset for one call."""

    run: Any
    photo: Path
    folder: Path
    tmp: Path


def _export(format: str) -> Callable[[Scene], Any]:
    return lambda s: tl.export(s.run, format, s.tmp / f"model.{format}", limit=4)


def _serve(s: Scene) -> Any:

    from transferlab.serve.predictor import Predictor, ServeConfig

    predictor = Predictor(s.run, ServeConfig())
    upload = (s.photo.read_bytes(), s.photo.name)
    return asyncio.run(predictor.answer([upload], k=2, with_cam=True))


def _view(s: Scene) -> torch.Tensor:
    return s.run.load_image(s.photo)  # (1, 3, H, W) in [0, 1]


FEW_STEPS = tl.AttackConfig(steps=2, precision="fp32")

# name -> (the call, the parameter dtype a caller may hold the model in that the call accepts)
CALLS: dict[str, tuple[Callable[[Scene], Any], torch.dtype]] = {
    "export-onnx": (_export("onnx"), torch.float64),
    "export-torchscript": (_export("torchscript"), torch.bfloat16),
    "serve-predictor": (_serve, torch.bfloat16),
    "report": (lambda s: tl.report(s.run, s.tmp / "report.html", gradcam_samples=1, dream_steps=1), torch.float32),
    "attack": (lambda s: tl.attack(s.run, s.photo, config=FEW_STEPS), torch.float32),
    "explain": (lambda s: tl.explain(s.run, s.photo), torch.float32),
    "run.explain": (lambda s: s.run.explain(s.photo), torch.float32),
    "dream": (lambda s: tl.dream(s.run.model, 0, tl.DreamConfig(steps=2, size=32)), torch.float32),
    "run.dream": (lambda s: s.run.dream(0, tl.DreamConfig(steps=2, size=32)), torch.float32),
    "robustness": (lambda s: tl.robustness(s.run, tl.load_dataset(s.folder), eps=(0, 2 / 255), config=FEW_STEPS, limit=1), torch.float32),
    "run.evaluate": (lambda s: s.run.evaluate(tl.load_dataset(s.folder), precision="fp32"), torch.float64),
    "run.predict": (lambda s: s.run.predict([s.photo], precision="fp32"), torch.float64),
    "gradcam": (lambda s: tl.gradcam(s.run.model, _view(s)), torch.float64),
    "feature_maps": (lambda s: tl.feature_maps(s.run.model, _view(s).to(torch.bfloat16)), torch.bfloat16),
}


def _as_a_caller_might(model: nn.Module, dtype: torch.dtype) -> None:
    """Fine-tuning state: train mode with the BatchNorm layers frozen in eval mode, the first half of the
    weights frozen (requires_grad False), in ``dtype``."""
    model.to(dtype).train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    params = list(model.parameters())
    for p in params[: len(params) // 2]:
        p.requires_grad_(False)


def _state(model: nn.Module) -> dict[str, Any]:
    tensors = {**{f"param {n}": p for n, p in model.named_parameters()}, **{f"buffer {n}": b for n, b in model.named_buffers()}}
    return {
        "device": {n: t.device for n, t in tensors.items()},
        "dtype": {n: t.dtype for n, t in tensors.items()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "grad": {n: p.grad is None for n, p in model.named_parameters()},
        "training": {n or "(root)": m.training for n, m in model.named_modules()},
        "values": {n: t.detach().clone() for n, t in tensors.items()},
    }


def _differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    for key in ("device", "dtype", "requires_grad", "grad", "training"):
        changed = [n for n in before[key] if after[key].get(n) != before[key][n]]
        out += [f"{key} of {n}: {before[key][n]} -> {after[key].get(n)}" for n in changed[:3]]
    for n, v in before["values"].items():
        w = after["values"].get(n)
        if w is None or w.dtype != v.dtype or not torch.equal(w, v):
            out.append(f"values of {n} changed")
            break
    return out


@pytest.mark.parametrize("name", list(CALLS))
def test_call_leaves_the_callers_model_as_found(name: str, tiny_run_dir: Path, tmp_path: Path) -> None:
    call, dtype = CALLS[name]
    folder = make_photo_folder(tmp_path / "photos", per_class=2, size=(40, 32))
    scene = Scene(tl.load(tiny_run_dir), make_photo(tmp_path / "cat.jpg", 0, seed=7, size=(44, 36)), folder, tmp_path)
    _as_a_caller_might(scene.run.model, dtype)
    before = _state(scene.run.model)
    call(scene)
    assert _differences(before, _state(scene.run.model)) == []
