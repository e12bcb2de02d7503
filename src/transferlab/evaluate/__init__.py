"""Evaluation: metrics as pure numpy functions, and figures built without pyplot. Modules load on first use."""

from .._lazy import attach

_EXPORTS = {
    'classification_report': '.metrics',
    'confusion_matrix': '.metrics',
    'top_losses': '.metrics',
    'plot_confusion_matrix': '.plots',
    'plot_history': '.plots',
    'plot_top_losses': '.plots',
    'plot_tradeoff': '.plots',
    'save_figure': '.plots',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
__all__ = ['classification_report', 'confusion_matrix', 'plot_confusion_matrix', 'plot_history', 'plot_top_losses', 'plot_tradeoff', 'save_figure', 'top_losses']
