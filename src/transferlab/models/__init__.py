"""Backbones (timm + bundled offline weights), the classifier module, and run save/load. Modules load on first use."""

from .._lazy import attach

from .defaults import DEFAULT_BACKBONE

_EXPORTS = {
    'Backbone': '.backbones',
    'create_backbone': '.backbones',
    'list_backbones': '.backbones',
    'read_state_dict': '.backbones',
    'BUNDLED': '.bundled',
    'resolve_class': '.classes',
    'ImageClassifier': '.classifier',
    'Normalize': '.classifier',
    'imagenet_classes': '.imagenet',
    'Preprocess': '.preprocess',
    'load_model': '.saving',
    'read_meta': '.saving',
    'save_model': '.saving',
    'write_json': '.saving',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
__all__ = [
    'BUNDLED', 'Backbone', 'DEFAULT_BACKBONE', 'ImageClassifier', 'Normalize', 'Preprocess', 'create_backbone', 'imagenet_classes',
    'list_backbones', 'load_model', 'read_meta', 'read_state_dict', 'resolve_class', 'save_model', 'write_json',
]
