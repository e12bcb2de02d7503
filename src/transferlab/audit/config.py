"""The audit's thresholds as a frozen dataclass: importing it loads no torch (the CLI's defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AuditConfig:
    """What counts as a finding; the defaults were calibrated as README ("Auditing a collection") says."""

    candidate_similarity: float = 0.80  # cosine of pooled features above which two images are compared pixel by
    # pixel: edited copies (JPEG 60, 70% size, 5% crop, mirror, colour) of Oxford mini photos scored >= 0.87
    near_duplicate: float = 0.90  # pixel agreement (aligned grey detail maps, see pixels.py) above which two images
    # are the same photo: edited copies of Oxford mini photos scored >= 0.946, bursts of one pet <= 0.39,
    # different tiles of magnetic-tiles <= 0.79
    neighbours: int = 10  # nearest neighbours searched per image, for duplicates and outliers
    folds: int = 5  # k of the k-fold probe giving every image an out-of-fold prediction
    outlier_z: float = 6.0  # robust z-score (median / MAD) of the mean distance to the nearest neighbours above
    # which an image is an outlier
    outlier_k: int = 5  # neighbours averaged for the outlier score
    max_thumbnails: int = 200  # cards per section of audit.html (all findings are in audit.json and audit.csv)
