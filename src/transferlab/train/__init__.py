"""Training strategies: ``probe`` (a linear head on cached frozen features) and ``finetune``
(the probe's head, then the backbone unfrozen with discriminative learning rates)."""

from .finetune import FinetuneConfig, FinetuneResult, finetune, load_checkpoint
from .probe import ProbeConfig, ProbeResult, fit_probe, stratified_holdout

__all__ = ["FinetuneConfig", "FinetuneResult", "ProbeConfig", "ProbeResult", "finetune", "fit_probe", "load_checkpoint", "stratified_holdout"]
