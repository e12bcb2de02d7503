"""Backbone registry over timm: any timm model name, with weights from the bundled packages,
a user's file (``--weights``), or timm's hub when online."""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import BackboneError, UnknownBackboneError
from .bundled import BUNDLED, load_bundled
from .defaults import DEFAULT_BACKBONE, DEFAULT_FEATURES
from .classifier import ImageClassifier
from .combined import FEATURE_MODES, CombinedNet
from .imagenet import imagenet_classes
from .preprocess import Preprocess

_HUB_HOST = "huggingface.co"


@dataclass
class Backbone:
    """A pretrained network ready for feature extraction, with where its weights came from."""

    name: str  # what the user asked for, e.g. "efficientnet_lite0", "resnet50.a1_in1k" or "efficientnet_lite0+resnet50"
    arch: str  # the timm architecture actually built, e.g. "tf_efficientnet_lite0" ("combined-pooled:A+B" for several)
    model: ImageClassifier  # with its original (ImageNet) head when the weights have one
    weights: str  # "bundled:<package>==<version>", "file:<path>", "hub:<name>" or "hub-cache:<name>"


def list_backbones() -> list[str]:
    """Bundled backbones first (work offline), then every timm architecture."""
    import timm

    return sorted(BUNDLED) + [n for n in timm.list_models() if n not in BUNDLED]


def _check_name(name: str) -> str:
    import timm

    if name in BUNDLED:
        return BUNDLED[name].arch
    arch = name.split(".", 1)[0]  # timm names may carry a pretrained tag: resnet50.a1_in1k
    if timm.is_model(arch):
        return arch
    close = difflib.get_close_matches(name.lower(), list_backbones(), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `transferlab backbones` lists them"
    error = UnknownBackboneError(f"unknown backbone {name!r}{hint}")
    error.close = tuple(close)
    raise error


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}:
        return False
    try:
        with socket.create_connection((_HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load tensors from .safetensors, or a .pth/.pt/.bin state dict without unpickling code."""
    if not path.is_file():
        raise BackboneError(f"weights file {str(path)!r} does not exist — check the --weights path")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any parse failure is the same user error: not a usable weights file
        import pickle

        why = (
            "it holds objects that could run code when loaded: refused" if isinstance(err, pickle.UnpicklingError)
            else f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:160]}"  # torch's messages run to paragraphs
        )
        raise BackboneError(
            f"cannot read weights from {str(path)!r} ({why}) — expected a .safetensors file or a plain PyTorch state dict"
        ) from err
    for wrapper in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneError(f"expected a dict of tensors in {str(path)!r}, got {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def state_dict_mismatch(net: torch.nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """Keys ``net`` needs that ``state`` lacks, keys it does not know, and keys whose shapes differ."""
    own = net.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    return missing, unexpected, sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)


def _from_file(arch: str, path: Path) -> torch.nn.Module:
    import timm

    state = read_state_dict(path)
    model = timm.create_model(arch, pretrained=False)
    head_keys = {f"{model.default_cfg.get('classifier', 'classifier')}.{p}" for p in ("weight", "bias")}
    own = model.state_dict()
    if any(k in state and state[k].shape != own[k].shape for k in head_keys):
        # The file carries a head for other classes: keep its backbone, drop its head.
        model.reset_classifier(0)
        state = {k: v for k, v in state.items() if k not in head_keys}
    missing, unexpected, wrong_shape = state_dict_mismatch(model, state)
    if missing or unexpected or wrong_shape:
        raise BackboneError(
            f"weights in {str(path)!r} do not fit {arch}: {len(missing)} missing, {len(unexpected)} unexpected and "
            f"{len(wrong_shape)} wrongly shaped tensors (e.g. {(missing + unexpected + wrong_shape)[:2]}) "
            "— pass weights saved from this architecture"
        )
    model.load_state_dict(state)
    return model


def _hub_cached_file(name: str) -> Path | None:
    """The weights file a previous online run left in the Hugging Face cache, if any."""
    import timm
    from huggingface_hub import constants, try_to_load_from_cache

    hub_id = timm.create_model(name, pretrained=False).pretrained_cfg.get("hf_hub_id")
    if not hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(hub_id, filename, cache_dir=constants.HF_HUB_CACHE)
        if isinstance(found, str):
            return Path(found)
    return None


def _from_hub(name: str) -> tuple[torch.nn.Module, str]:
    import timm

    if not _hub_reachable():
        cached = _hub_cached_file(name)
        if cached is None:
            raise BackboneError(
                f"no offline weights for {name!r}: timm downloads them from the Hugging Face hub, which is unreachable "
                f"— pass --weights FILE (a .safetensors or .pth state dict), or use a bundled backbone "
                f"({', '.join(sorted(BUNDLED))})"
            )
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(cached)}), f"hub-cache:{name}"
    try:
        return timm.create_model(name, pretrained=True), f"hub:{name}"
    except Exception as err:  # hub/network errors come in many types; all mean "could not get weights"
        raise BackboneError(f"could not download weights for {name!r}: {err} — or pass --weights FILE") from err


Weights = str | Path | Mapping[str, str | Path] | None


def check_weights_available(name: str, weights: Weights = None) -> None:
    """Raise the ``BackboneError`` ``create_backbone`` would for a bad name, a missing file or no weights
    offline (for each member of ``A+B``), without building the network: lets a command fail before minutes
    of work, not after."""
    names = split_names(name)
    for member, file in _member_weights(names, weights).items():
        _check_name(member)
        if file is not None:
            if not Path(file).is_file():
                raise BackboneError(f"weights file {str(file)!r} does not exist — check the --weights path")
        elif member not in BUNDLED and not _hub_reachable() and _hub_cached_file(member) is None:
            raise BackboneError(
                f"no offline weights for {member!r}: the Hugging Face hub is unreachable and nothing is cached "
                f"— pass --weights {member}=FILE (a .safetensors or .pth state dict), or use a bundled backbone ({', '.join(sorted(BUNDLED))})"
            )


def split_names(name: str) -> list[str]:
    """``"efficientnet_lite0+resnet50"`` -> the member names (one for a single backbone)."""
    names = [n.strip() for n in name.split("+")]
    if not all(names):
        raise BackboneError(f"expected backbone names joined by '+', e.g. efficientnet_lite0+efficientnet_lite1, got {name!r}")
    if len(set(names)) < len(names):
        raise BackboneError(f"expected each backbone once in {name!r} — a network combined with itself adds nothing")
    return names


def _member_weights(names: list[str], weights: Weights) -> dict[str, str | Path | None]:
    if weights is None or isinstance(weights, Mapping):
        mapping = dict(weights or {})
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise BackboneError(f"--weights names {', '.join(unknown)}, which is not in {'+'.join(names)} — name a member backbone, e.g. {names[0]}=FILE")
        return {n: mapping.get(n) for n in names}
    if len(names) > 1:
        raise BackboneError(f"one --weights FILE cannot serve {len(names)} backbones — pass NAME=FILE for each member that uses a local file")
    return {names[0]: weights}


def create_backbone(name: str = DEFAULT_BACKBONE, weights: Weights = None, features: str = DEFAULT_FEATURES) -> Backbone:
    """Build a pretrained backbone by name.

    Args:
        name: a bundled name (``efficientnet_lite0/1/2``, offline), any timm model name, or several joined by
            ``+`` (their features concatenated, ``models.combined``).
        weights: a .safetensors / .pth state dict to use instead of the bundled or hub weights; for several
            backbones, a mapping from member name to file.
        features: ``pooled`` (the network's own pooled features) or ``multi`` (its last stages pooled too).

    Raises:
        BackboneError: unknown name (with close matches), unreadable weights, or no weights offline.
    """
    if features not in FEATURE_MODES:
        raise BackboneError(f"expected --features in {', '.join(FEATURE_MODES)}, got {features!r}")
    names = split_names(name)
    files = _member_weights(names, weights)
    if len(names) > 1:
        check_weights_available(name, weights)  # every member's, before minutes of loading the first
    parts = [_single_backbone(member, files[member]) for member in names]
    return parts[0] if len(parts) == 1 and features == DEFAULT_FEATURES else combine_backbones(parts, features)


def _single_backbone(name: str, weights: str | Path | None) -> Backbone:
    arch = _check_name(name)
    if weights is not None:
        net, source = _from_file(arch, Path(weights)), f"file:{Path(weights).resolve()}"
    elif name in BUNDLED:
        net, source = load_bundled(name)
    else:
        net, source = _from_hub(name)
    net.eval()
    classes = imagenet_classes() if net.num_classes == 1000 else [str(i) for i in range(net.num_classes)]
    return Backbone(name=name, arch=arch, model=ImageClassifier(net, Preprocess.from_timm(net), classes), weights=source)


def combine_backbones(parts: list[Backbone], features: str = DEFAULT_FEATURES) -> Backbone:
    """One backbone whose features are the ``parts``' concatenated (their ``multi`` features for ``multi``).

    It takes the largest member's crop (normalised inside, per member); the members' own heads are dropped,
    so the result has no classes until a head is trained. The ``parts``' networks become its members.
    """
    largest = max(parts, key=lambda p: p.model.preprocess.input_size)
    net = CombinedNet(
        [p.model.net for p in parts], [p.arch for p in parts], [(p.model.preprocess.mean, p.model.preprocess.std) for p in parts],
        [p.model.preprocess.input_size for p in parts], features,
    ).eval()
    preprocess = dataclasses.replace(largest.model.preprocess, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))  # members normalise their own way
    return Backbone(
        name="+".join(p.name for p in parts), arch=net.architecture, model=ImageClassifier(net, preprocess, []),
        weights=" + ".join(p.weights for p in parts),
    )
