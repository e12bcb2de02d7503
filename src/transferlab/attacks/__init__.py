"""Adversarial attacks in [0, 1] pixel space: a base class with the shared concerns, one file per method,
image-difference metrics, one image attacked with its record and files (``single``), and robustness over a
dataset. Tensors in, tensors out: attacking photo files of a run is ``transferlab.tasks.attack``. Modules load on first use."""

from .._lazy import attach

_EXPORTS = {
    'AttackResult': '.base',
    'AdversarialExample': '.single',
    'Attack': '.base',
    'margins': '.base',
    'parse_eps': '.base',
    'parse_eps_list': '.base',
    'METHODS': '.config',
    'AttackConfig': '.config',
    'FGSM': '.fgsm',
    'l2': '.metrics',
    'linf': '.metrics',
    'psnr': '.metrics',
    'ssim': '.metrics',
    'BIM': '.pgd',
    'PGD': '.pgd',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
__all__ = ['AdversarialExample', 'Attack', 'AttackConfig', 'AttackResult', 'BIM', 'FGSM', 'METHODS', 'PGD', 'l2', 'linf', 'margins', 'parse_eps', 'parse_eps_list', 'psnr', 'ssim']
