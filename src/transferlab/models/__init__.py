"""Backbones (timm + bundled offline weights), the classifier module and what rebuilds it (the run folder itself: ``run.store``). Modules load on first use."""

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
    'build_classifier': '.saving',
    'write_json': '.saving',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
__all__ = [
    'BUNDLED', 'Backbone', 'DEFAULT_BACKBONE', 'ImageClassifier', 'Normalize', 'Preprocess', 'create_backbone', 'imagenet_classes',
    'build_classifier', 'list_backbones', 'read_state_dict', 'resolve_class', 'write_json',
]
