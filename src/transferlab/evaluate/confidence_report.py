"""The calibration and "none of these" parts of an evaluation report, as JSON-ready dicts."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.confidence import Confidence
from .calibration import ECE_BINS, auroc, expected_calibration_error, fpr_at, log_loss


def confidence_report(y_true: np.ndarray, raw: np.ndarray, calibrated: np.ndarray, scores: np.ndarray, accepted: np.ndarray, confidence: Confidence) -> dict[str, Any]:
    """``calibration`` (ECE over 15 bins and log-loss before/after temperature scaling) and
    ``in_distribution`` (the score, threshold and the share of these images accepted)."""
    calibration = {
        "temperature": confidence.temperature, "bins": ECE_BINS,
        "ece_before": expected_calibration_error(y_true, raw), "ece_after": expected_calibration_error(y_true, calibrated),
        "log_loss_before": log_loss(y_true, raw), "log_loss_after": log_loss(y_true, calibrated),
        "fitted_on": confidence.fitted_on or None,
    }
    inside = {"method": confidence.method, "threshold": confidence.threshold, "accept": confidence.accept, "accepted": float(np.mean(accepted)) if len(accepted) else None}
    if not confidence.rejects:
        inside["note"] = "this run has no 'none of these' threshold"
    return {"calibration": calibration, "in_distribution": inside}


def ood_report(in_scores: np.ndarray, out_scores: np.ndarray, confidence: Confidence, in_msp: np.ndarray, out_msp: np.ndarray) -> dict[str, Any]:
    """How well the run's score separates out-of-distribution images from the evaluated ones: AUROC,
    FPR95 (share of them accepted when 95 % of the evaluated images are), the share the run's own
    threshold accepts; and the same for the maximum softmax probability (the baseline)."""
    out: dict[str, Any] = {
        "method": confidence.method or "msp", "n_in": int(len(in_scores)), "n_out": int(len(out_scores)),
        "auroc": auroc(in_scores, out_scores), "fpr95": fpr_at(in_scores, out_scores, 0.95),
    }
    if confidence.rejects:
        out["accepted_in"] = float(np.mean(in_scores >= confidence.threshold))
        out["accepted_out"] = float(np.mean(out_scores >= confidence.threshold))
    out["baseline"] = {"method": "msp", "auroc": auroc(in_msp, out_msp), "fpr95": fpr_at(in_msp, out_msp, 0.95)}
    return out
