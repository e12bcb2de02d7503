"""Look inside a network: layer hooks, feature maps, ideal class images (dream) and Grad-CAM.

Everything takes and returns images in [0, 1]; the model's normalisation stays inside the model.
Imports only ``models`` (and ``errors``): files and datasets are handled one level up (``transferlab.explain``).
"""

from .dream import Dream, DreamConfig, dream
from .feature_maps import FeatureMaps, feature_grid, feature_maps
from .gradcam import CAM, gradcam, overlay
from .hooks import LayerInfo, capture, get_layer, last_conv_layer, list_layers, stage_layer

__all__ = [
    "CAM", "Dream", "DreamConfig", "FeatureMaps", "LayerInfo", "capture", "dream", "feature_grid", "feature_maps",
    "get_layer", "gradcam", "last_conv_layer", "list_layers", "overlay", "stage_layer",
]
