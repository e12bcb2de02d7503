"""Batch prediction and feature extraction on a Ray cluster (Ray Data): decoding in tasks, the model in an actor pool.

Needs Ray Data (``pip install 'ray[data]'``; in a clone, ``pip install -e '.[ray]'``). Modules load on first use.
"""

from .._lazy import attach

_EXPORTS = {
    'RayConfig': '.session',
    'ray_predict': '.predict',
    'RayPrediction': '.predict',
    'ray_extract': '.extract',
    'RayExtraction': '.extract',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
__all__ = ['RayConfig', 'RayExtraction', 'RayPrediction', 'ray_extract', 'ray_predict']
