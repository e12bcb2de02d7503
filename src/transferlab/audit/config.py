"""The audit's thresholds as a frozen dataclass: importing it loads no torch (the CLI's defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

LABEL_RULES = ("relative", "confident_learning")


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
    label_rule: str = "relative"  # "relative": given label's probability < label_fraction x its class's mean;
    # "confident_learning": cleanlab's default filter (prune_by_noise_rate). Both on the same probabilities (the
    # k-fold probe averaged with a neighbour vote); chosen with 5% of labels flipped on the 7 suite sets, seeds 0-2
    label_fraction: float = 0.15
    label_neighbours: int = 10  # nearest neighbours voting for each image's label
    outlier_z: float = 6.0  # robust z-score (median / MAD) of the mean distance to the nearest neighbours above
    # which an image is an outlier
    outlier_k: int = 5  # neighbours averaged for the outlier score
    max_thumbnails: int = 200  # cards per section of audit.html (all findings are in audit.json and audit.csv)

    def __post_init__(self) -> None:
        if self.label_rule not in LABEL_RULES:
            raise ConfigError(f"label_rule must be one of {', '.join(LABEL_RULES)}, got {self.label_rule!r}")
        if not 0.0 < self.label_fraction < 1.0:
            raise ConfigError(f"label_fraction must be between 0 and 1, got {self.label_fraction}")
