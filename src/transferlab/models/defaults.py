"""Defaults that must import nothing heavy (the CLI reads them for its help)."""

DEFAULT_BACKBONE = "efficientnet_lite0"  # bundled weights: works offline
DEFAULT_FEATURES = "pooled"  # the backbone's pooled output; "multi" adds its last stages, pooled (models.combined)
FEATURE_MODES = ("pooled", "multi")
SCORE_METHODS = ("msp", "energy", "mahalanobis", "knn")  # in-distribution scores (models.confidence)
DEFAULT_METHOD = "knn"  # best AUROC/FPR95 across the development suite's selection splits (BENCHMARKS.md, "Out of distribution")
DEFAULT_ACCEPT = 0.95  # share of in-distribution (validation) images the threshold accepts
