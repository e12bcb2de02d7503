"""Training strategies: ``probe`` (a linear head on cached frozen features) and ``finetune``
(the probe's head, then the backbone unfrozen with discriminative learning rates)."""

from .checkpoint import load_checkpoint, load_latest_checkpoint, save_checkpoint
from .finetune import FinetuneConfig, FinetuneResult, finetune
from .probe import ProbeConfig, ProbeResult, fit_probe, stratified_holdout

__all__ = ["FinetuneConfig", "FinetuneResult", "ProbeConfig", "ProbeResult", "finetune", "fit_probe", "load_checkpoint", "load_latest_checkpoint", "save_checkpoint", "stratified_holdout"]
