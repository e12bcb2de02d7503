"""Feature extraction with the frozen backbone, and its on-disk cache. Modules load on first use."""

from .._lazy import attach

_EXPORTS = {
    'FeatureCache': '.cache',
    'content_hash': '.cache',
    'default_cache_dir': '.cache',
    'Extraction': '.extract',
    'cache_key': '.extract',
    'extract_features': '.extract',
    'features_of_images': '.extract',
    'load_image': '.extract',
    'Runtime': '.runtime',
    'cpu_has_bf16': '.runtime',
    'pick_runtime': '.runtime',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
__all__ = ['Extraction', 'FeatureCache', 'Runtime', 'cache_key', 'content_hash', 'cpu_has_bf16', 'default_cache_dir', 'extract_features', 'features_of_images', 'load_image', 'pick_runtime']
