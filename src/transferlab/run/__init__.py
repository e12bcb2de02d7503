"""The centre every task and front end goes through: the run record, the run folder, one prediction type,
``Run``, and training as small named steps. Imports only the algorithm packages below it. Modules load on first use."""

from .._lazy import attach

_EXPORTS = {
    'Evaluation': '.evaluation',
    'Run': '.run',
    'Scored': '.run',
    'check_classes': '.evaluation',
    'default_run_dir': '.run',
    'from_backbone': '.run',
    'load': '.run',
    'open_model': '.run',
    'unseen_line': '.evaluation',
    'Prediction': '.prediction',
    'Phase': '.record',
    'RunRecord': '.record',
    'short_hash': '.record',
    'STRATEGIES': '.fit',
    'calibrate': '.fit',
    'find_lr': '.fit',
    'resume': '.fit',
    'train': '.fit',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
