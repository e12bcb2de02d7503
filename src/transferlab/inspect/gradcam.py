"""Grad-CAM (Selvaraju et al., ICCV 2017): where in the photo the evidence for a class lies.

The gradient of the class logit with respect to a late convolutional map, averaged over space, weighs
that map's channels; the ReLU of the weighted sum is a coarse heat map of the regions that raise the
class. Written here (a few lines over ``hooks.capture``) rather than taken from the ``grad-cam`` package,
whose ``BaseCAM`` calls ``loss.backward()`` - filling and first zeroing the ``.grad`` of every weight of
the caller's model - and leaves the model in eval mode; the test suite checks our maps against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ..models import ImageClassifier, resolve_class
from ..models.state import eval_mode
from .hooks import as_map, capture, last_conv_layer
from ..errors import InputError


@dataclass
class CAM:
    """A Grad-CAM heat map for one image and class.

    Shape:
        heatmap (H, W) in [0, 1] at the input image's size (1 at the peak); coarse (h, w), the
        un-normalised map at the layer's resolution; image (1, 3, H, W) in [0, 1].
    """

    heatmap: torch.Tensor
    coarse: torch.Tensor
    class_index: int
    class_name: str
    probability: float
    layer: str
    image: torch.Tensor

    def peak(self) -> tuple[int, int]:
        """(row, column) of the heat map's maximum, in input-image pixels."""
        flat = int(torch.argmax(self.heatmap))
        return divmod(flat, self.heatmap.shape[1])

    def overlay(self, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
        """The image with the heat map blended over it, as an RGB PIL image."""
        return overlay(self.image[0], self.heatmap, alpha, cmap)

    def _repr_html_(self) -> str:
        """The model's view and the overlay side by side, under the class, its probability and the layer."""
        from .. import _html

        width = max(224, int(self.image.shape[-1]))
        caption = f"Grad-CAM: {self.class_name} (p={self.probability:.2f}) at {self.layer}"
        images = _html.img(overlay(self.image[0], self.heatmap, 0.0), alt="the model's view", width=width) + " " + _html.img(self.overlay(), alt=caption, width=width)
        return _html.block(images, _html.text(caption), title="Grad-CAM")

    def sheet(self, alpha: float = 0.5) -> Image.Image:
        """The model's view of the photo beside the overlay, captioned with class, probability and layer."""
        view = overlay(self.image[0], self.heatmap, 0.0)
        w, h = view.size
        out = Image.new("RGB", (2 * w + 12, h + 22), "white")
        out.paste(view, (4, 18))
        out.paste(self.overlay(alpha), (w + 8, 18))
        ImageDraw.Draw(out).text((4, 3), f"Grad-CAM: {self.class_name} (p={self.probability:.2f}) at {self.layer}", fill="black")
        return out


def gradcam(model: ImageClassifier, image: torch.Tensor, target: int | str | None = None, layer: str | None = None) -> CAM:
    """Grad-CAM of ``target`` (index or name; default: the predicted class) at ``layer`` (default: the
    last spatial layer, ``hooks.last_conv_layer``), in the model's dtype. The model's weights get no
    gradients; its modes are restored.

    Shape:
        image (1, 3, H, W) in [0, 1].
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise InputError(f"expected one image of shape (1, 3, H, W), got {tuple(image.shape)}")
    name = layer or last_conv_layer(model)
    param = next(model.parameters())
    # the input asks for gradients, so the graph reaches the layer even when every weight is frozen
    x = image.detach().to(param.device, param.dtype).requires_grad_(True)
    with eval_mode(model), torch.enable_grad(), capture(model.net, [name], detach=False) as acts:
        logits = model(x)
        index = int(logits.argmax(1)) if target is None else resolve_class(model.classes, target)
        raw = acts.get(name)
        if raw is None or as_map(model.net, raw, name) is None:
            got = "no tensor" if raw is None else f"shape {tuple(raw.shape)}"
            raise InputError(f"expected layer {name!r} to output a map or patch tokens, got {got} — pick one from `transferlab features MODEL --list-layers`")
        (grad,) = torch.autograd.grad(logits[0, index], raw)
        activation, grad = as_map(model.net, raw, name), as_map(model.net, grad, name)  # (1, K, h, w); ViT tokens on the patch grid
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (1, K, 1, 1): channel importance
    coarse = F.relu((weights * activation).sum(dim=1))[0].detach().float().cpu()  # (h, w)
    up = F.interpolate(coarse[None, None], size=image.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    heatmap = (up - up.min()) / (up.max() - up.min() + 1e-12)  # min-max after upsampling: the peak is exactly 1
    prob = float(torch.softmax(logits.detach().float(), dim=1)[0, index])
    return CAM(heatmap, coarse, index, model.classes[index], prob, name, image.detach().float().cpu())


def overlay(image: torch.Tensor, heatmap: torch.Tensor, alpha: float = 0.5, cmap: str = "jet") -> Image.Image:
    """Blend a [0, 1] heat map (coloured by ``cmap``) over an image. Shape: image (3, H, W), heatmap (H, W)."""
    from matplotlib import colormaps

    colours = colormaps[cmap](heatmap.numpy())[..., :3]  # (H, W, 3)
    base = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    mixed = (1 - alpha) * base + alpha * colours
    return Image.fromarray((mixed * 255).round().astype(np.uint8))
