"""transferlab: from a folder of photos to a trained, evaluated image classifier by transfer learning.

    import transferlab as tl
    ds = tl.load_dataset("photos/")
    run = tl.train(ds, backbone="efficientnet_lite0", out="runs/pets")
    run.evaluate(ds).report["accuracy"]
    tl.load("runs/pets").predict(["cat.jpg"])
"""

__version__ = "0.1.0"

from .data import Dataset, check_dataset, load_dataset, write_fix_list  # noqa: E402
from .errors import BackboneError, ConfigError, DataError, RunError, StorageError, TransferlabError  # noqa: E402
from . import inspect  # noqa: E402
from .inspect.dream import Dream, DreamConfig, dream  # noqa: E402
from .inspect.feature_maps import FeatureMaps, feature_maps  # noqa: E402
from .inspect.gradcam import CAM, gradcam  # noqa: E402
from .inspect.hooks import capture, list_layers  # noqa: E402
from .models import create_backbone, list_backbones  # noqa: E402
from .run import Evaluation, Run, default_run_dir, from_backbone, load, open_model  # noqa: E402
from .training import find_lr, resume, train  # noqa: E402
from .train import FinetuneConfig, ProbeConfig  # noqa: E402
from .explain import PointingScore, explain, score_explanations  # noqa: E402
from .attacks import AttackConfig  # noqa: E402
from .adversarial import attack, robustness  # noqa: E402
from .export import Export, OnnxModel, Parity, check_parity, export  # noqa: E402
from .report import report  # noqa: E402

__all__ = [
    "AttackConfig",
    "BackboneError",
    "CAM",
    "ConfigError",
    "DataError",
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
    "ProbeConfig",
    "Run",
    "RunError",
    "StorageError",
    "TransferlabError",
    "__version__",
    "capture",
    "attack",
    "check_parity",
    "check_dataset",
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
