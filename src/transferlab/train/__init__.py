"""Training strategies: ``probe`` (a linear head on cached frozen features) and ``finetune``
(the probe's head, then the backbone unfrozen with discriminative learning rates). Modules load on first use."""

from .._lazy import attach, keep_functions

from .config import FinetuneConfig, ProbeConfig

_EXPORTS = {
    'load_checkpoint': '.checkpoint',
    'load_latest_checkpoint': '.checkpoint',
    'save_checkpoint': '.checkpoint',
    'FinetuneResult': '.finetune',
    'finetune': '.finetune',
    'ProbeResult': '.probe',
    'fit_probe': '.probe',
    'stratified_holdout': '.probe',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
keep_functions(__name__, {"finetune"})  # functions named like their modules
__all__ = ['FinetuneConfig', 'FinetuneResult', 'ProbeConfig', 'ProbeResult', 'finetune', 'fit_probe', 'load_checkpoint', 'load_latest_checkpoint', 'save_checkpoint', 'stratified_holdout']
