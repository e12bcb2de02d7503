"""A classifier's tensors and the description that rebuilds it, without touching files: the run folder itself
is read and written by ``run.store``. Nothing is ever unpickled."""

from __future__ import annotations

from typing import Any

import torch

from .._io import write_json  # noqa: F401  (0.1 found it here)
from ..errors import RunError
from .backbones import state_dict_mismatch
from .classifier import ImageClassifier
from .combined import CombinedNet
from .preprocess import Preprocess


def network_state(model: ImageClassifier) -> dict[str, torch.Tensor]:
    """The network's tensors, on the CPU and contiguous, ready for safetensors."""
    return {k: v.detach().cpu().contiguous() for k, v in model.net.state_dict().items()}


def describe_network(model: ImageClassifier) -> dict[str, Any]:
    """What rebuilds the classifier besides its tensors: classes, preprocessing, and for several backbones or
    multi-stage features their ``network`` description."""
    out: dict[str, Any] = {"classes": model.classes, "preprocess": model.preprocess.to_dict()}
    if isinstance(model.net, CombinedNet):
        out["network"] = model.net.describe()
    return out


def build_classifier(arch: str, classes: list[str], preprocess: dict[str, Any], state: dict[str, torch.Tensor], network: dict[str, Any] | None, where: str) -> ImageClassifier:
    """The classifier from its description and tensors (no network access).

    Raises:
        RunError: the description is inconsistent or the tensors do not fit it (``where`` names the run).
    """
    import timm

    try:
        net = CombinedNet.from_description(network, len(classes)) if network else timm.create_model(arch, pretrained=False, num_classes=len(classes))
        prep = Preprocess.from_dict(preprocess)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        raise RunError(f"cannot load the model in {where}: model.json is inconsistent ({type(err).__name__}: {_first_line(err)}) — the run is damaged; retrain it") from err
    missing, unexpected, wrong = state_dict_mismatch(net, state)
    if missing or unexpected or wrong:
        raise RunError(
            f"cannot load the model in {where}: its tensors do not fit {arch} with {len(classes)} classes "
            f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrongly shaped, e.g. {(wrong + missing + unexpected)[0]}) "
            "— model.json and model.safetensors come from different runs, or the run is damaged; retrain it"
        )
    net.load_state_dict(state)
    return ImageClassifier(net.eval(), prep, classes)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
