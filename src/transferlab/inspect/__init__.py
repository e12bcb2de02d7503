"""Look inside a network: layer hooks, feature maps, ideal class images (dream) and Grad-CAM.

Everything takes and returns images in [0, 1]; the model's normalisation stays inside the model.
Imports only ``models`` (and ``errors``): files and datasets are handled one level up (``transferlab.tasks.explain``).
Modules load on first use."""

from .._lazy import attach, keep_functions

_EXPORTS = {
    'Dream': '.dream',
    'DreamConfig': '.dream.config',
    'dream': '.dream',
    'FeatureMaps': '.feature_maps',
    'feature_grid': '.feature_maps',
    'feature_maps': '.feature_maps',
    'CAM': '.gradcam',
    'gradcam': '.gradcam',
    'overlay': '.gradcam',
    'LayerInfo': '.hooks',
    'capture': '.hooks',
    'get_layer': '.hooks',
    'last_conv_layer': '.hooks',
    'list_layers': '.hooks',
    'stage_layer': '.hooks',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
keep_functions(__name__, {"dream", "gradcam", "feature_maps"})  # functions named like their modules
__all__ = ['CAM', 'Dream', 'DreamConfig', 'FeatureMaps', 'LayerInfo', 'capture', 'dream', 'feature_grid', 'feature_maps', 'get_layer', 'gradcam', 'last_conv_layer', 'list_layers', 'overlay', 'stage_layer']
