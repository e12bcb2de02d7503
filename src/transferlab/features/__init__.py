"""Feature extraction with the frozen backbone, and its on-disk cache."""

from .cache import FeatureCache, content_hash, default_cache_dir
from .extract import Extraction, cache_key, extract_features, load_image
from .runtime import Runtime, cpu_has_bf16, pick_runtime

__all__ = [
    "Extraction",
    "FeatureCache",
    "Runtime",
    "cache_key",
    "content_hash",
    "cpu_has_bf16",
    "default_cache_dir",
    "extract_features",
    "load_image",
    "pick_runtime",
]
