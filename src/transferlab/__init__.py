"""transferlab: from a folder of photos to a trained, evaluated image classifier by transfer learning.

    import transferlab as tl
    ds = tl.load_dataset("photos/")
    run = tl.train(ds, backbone="efficientnet_lite0", out="runs/pets")
    run.evaluate(ds).metrics["accuracy"]
    tl.load("runs/pets").predict(["cat.jpg"])
"""

from ._version import __version__

from typing import TYPE_CHECKING

from ._lazy import attach, keep_functions

# name -> module that defines it; imported on first use, so `import transferlab` loads no torch
_EXPORTS = {
    'Dataset': '.data',
    'check_dataset': '.data',
    'load_dataset': '.data',
    'write_fix_list': '.data',
    'BackboneError': '.errors',
    'ConfigError': '.errors',
    'InputError': '.errors',
    'DataError': '.errors',
    'RunError': '.errors',
    'StorageError': '.errors',
    'TransferlabError': '.errors',
    'inspect': '.inspect',
    'models': '.models',
    'attacks': '.attacks',
    'data': '.data',
    'train': '.run.fit',
    'features': '.features',
    'evaluate': '.evaluate',
    'Dream': '.inspect.dream',
    'DreamConfig': '.inspect.dream.config',
    'dream': '.inspect.dream',
    'FeatureMaps': '.inspect.feature_maps',
    'feature_maps': '.inspect.feature_maps',
    'CAM': '.inspect.gradcam',
    'gradcam': '.inspect.gradcam',
    'capture': '.inspect.hooks',
    'list_layers': '.inspect.hooks',
    'create_backbone': '.models.backbones',
    'list_backbones': '.models.backbones',
    'Evaluation': '.run.evaluation',
    'Run': '.run.run',
    'Scored': '.run.run',
    'Confidence': '.models.confidence',
    'default_run_dir': '.run.run',
    'from_backbone': '.run.run',
    'load': '.run.run',
    'open_model': '.run.run',
    'calibrate': '.run.fit',
    'find_lr': '.run.fit',
    'resume': '.run.fit',
    'FinetuneConfig': '.train.config',
    'ProbeConfig': '.train.config',
    'TrainConfig': '.run.config',
    'Prediction': '.run.prediction',
    'PointingScore': '.tasks.explain',
    'explain': '.tasks.explain',
    'score_explanations': '.tasks.explain',
    'AttackConfig': '.attacks.config',
    'attack': '.tasks.attack',
    'robustness': '.tasks.attack',
    'Export': '.tasks.export',
    'OnnxModel': '.tasks.export',
    'Parity': '.tasks.export',
    'check_parity': '.tasks.export',
    'export': '.tasks.export',
    'report': '.tasks.report',
    'audit': '.audit',
    'AuditConfig': '.audit',
    'Comparison': '.tasks.compare',
    'compare': '.tasks.compare',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
keep_functions(__name__, {"train", "audit"})  # functions named like the packages train/ and audit/

if TYPE_CHECKING:  # what type checkers and IDEs see
    from .data import Dataset, check_dataset, load_dataset, write_fix_list  # noqa: F401
    from .errors import BackboneError, ConfigError, DataError, InputError, RunError, StorageError, TransferlabError  # noqa: F401
    from . import attacks, data, evaluate, features, inspect, models  # noqa: F401
    from .run.fit import calibrate, find_lr, resume, train  # noqa: F401
    from .models.confidence import Confidence  # noqa: F401
    from .inspect.dream import Dream, dream  # noqa: F401
    from .inspect.dream.config import DreamConfig  # noqa: F401
    from .inspect.feature_maps import FeatureMaps, feature_maps  # noqa: F401
    from .inspect.gradcam import CAM, gradcam  # noqa: F401
    from .inspect.hooks import capture, list_layers  # noqa: F401
    from .models.backbones import create_backbone, list_backbones  # noqa: F401
    from .run.evaluation import Evaluation  # noqa: F401
    from .run.run import Run, Scored, default_run_dir, from_backbone, load, open_model  # noqa: F401
    from .train.config import FinetuneConfig, ProbeConfig  # noqa: F401
    from .run.config import TrainConfig  # noqa: F401
    from .run.prediction import Prediction  # noqa: F401
    from .tasks.explain import PointingScore, explain, score_explanations  # noqa: F401
    from .attacks.config import AttackConfig  # noqa: F401
    from .tasks.attack import attack, robustness  # noqa: F401
    from .tasks.export import Export, OnnxModel, Parity, check_parity, export  # noqa: F401
    from .tasks.report import report  # noqa: F401
    from .audit import AuditConfig, audit  # noqa: F401
    from .tasks.compare import Comparison, compare  # noqa: F401

__all__ = [  # every name of _EXPORTS (tests/test_public_api.py checks)
    "AttackConfig",
    "AuditConfig",
    "BackboneError",
    "CAM",
    "Confidence",
    "Comparison",
    "ConfigError",
    "DataError",
    "InputError",
    "Dataset",
    "Dream",
    "DreamConfig",
    "Evaluation",
    "Export",
    "FeatureMaps",
    "FinetuneConfig",
    "OnnxModel",
    "Parity",
    "PointingScore",
    "Prediction",
    "ProbeConfig",
    "TrainConfig",
    "Run",
    "RunError",
    "Scored",
    "StorageError",
    "TransferlabError",
    "__version__",
    "calibrate",
    "capture",
    "attack",
    "audit",
    "check_parity",
    "check_dataset",
    "compare",
    "create_backbone",
    "default_run_dir",
    "dream",
    "explain",
    "export",
    "feature_maps",
    "find_lr",
    "from_backbone",
    "gradcam",
    "inspect",
    "attacks",
    "data",
    "evaluate",
    "features",
    "models",
    "list_backbones",
    "list_layers",
    "load",
    "load_dataset",
    "open_model",
    "report",
    "resume",
    "score_explanations",
    "robustness",
    "train",
    "write_fix_list",
]
