"""Evaluation: metrics as pure numpy functions, and figures built without pyplot."""

from .metrics import classification_report, confusion_matrix, top_losses
from .plots import plot_confusion_matrix, plot_history, plot_top_losses, save_figure

__all__ = [
    "classification_report",
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_history",
    "plot_top_losses",
    "save_figure",
    "top_losses",
]
