"""What a user does with a trained run: attack it, explain it, export it, report on it, compare backbones.
Each task takes a ``Run`` and imports ``run/`` and the algorithm packages below it, never a front end. Modules load on first use."""

from .._lazy import attach

_EXPORTS = {
    'attack': '.attack',
    'robustness': '.attack',
    'PointingScore': '.explain',
    'explain': '.explain',
    'score_explanations': '.explain',
    'Export': '.export',
    'OnnxModel': '.export',
    'Parity': '.export',
    'check_parity': '.export',
    'export': '.export',
    'report': '.report',
    'Comparison': '.compare',
    'compare': '.compare',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
