"""Defaults that must import nothing heavy (the CLI reads them for its help)."""

DEFAULT_BACKBONE = "efficientnet_lite0"  # bundled weights: works offline
