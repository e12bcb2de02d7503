"""transferlab: from a folder of photos to a trained, evaluated image classifier by transfer learning.

    import transferlab as tl
    ds = tl.load_dataset("photos/")
    run = tl.train(ds, backbone="efficientnet_lite0", out="runs/pets")
    run.evaluate(ds).report["accuracy"]
    tl.load("runs/pets").predict(["cat.jpg"])
"""

__version__ = "0.1.0"

from .data import Dataset, check_dataset, load_dataset  # noqa: E402
from .errors import BackboneError, DataError, RunError, TransferlabError  # noqa: E402
from .models import create_backbone, list_backbones  # noqa: E402
from .run import Evaluation, Run, default_run_dir, find_lr, from_backbone, load, open_model, resume, train  # noqa: E402
from .train import FinetuneConfig, ProbeConfig  # noqa: E402
from .attacks import AttackConfig  # noqa: E402
from .adversarial import attack, robustness  # noqa: E402

__all__ = [
    "AttackConfig",
    "BackboneError",
    "DataError",
    "Dataset",
    "Evaluation",
    "FinetuneConfig",
    "ProbeConfig",
    "Run",
    "RunError",
    "TransferlabError",
    "__version__",
    "attack",
    "check_dataset",
    "create_backbone",
    "default_run_dir",
    "find_lr",
    "from_backbone",
    "list_backbones",
    "load",
    "load_dataset",
    "open_model",
    "resume",
    "robustness",
    "train",
]
