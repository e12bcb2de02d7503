"""Training strategies: ``probe`` (a linear head on cached frozen features)."""

from .probe import ProbeConfig, ProbeResult, fit_probe, stratified_holdout

__all__ = ["ProbeConfig", "ProbeResult", "fit_probe", "stratified_holdout"]
