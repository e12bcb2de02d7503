"""Backbones (timm + bundled offline weights), the classifier module, and run save/load."""

from .backbones import DEFAULT_BACKBONE, Backbone, create_backbone, list_backbones, read_state_dict
from .bundled import BUNDLED
from .classes import resolve_class
from .classifier import ImageClassifier, Normalize
from .imagenet import imagenet_classes
from .preprocess import Preprocess
from .saving import load_model, read_meta, save_model, write_json

__all__ = [
    "BUNDLED",
    "DEFAULT_BACKBONE",
    "Backbone",
    "ImageClassifier",
    "Normalize",
    "Preprocess",
    "create_backbone",
    "imagenet_classes",
    "list_backbones",
    "load_model",
    "read_meta",
    "read_state_dict",
    "resolve_class",
    "save_model",
    "write_json",
]
