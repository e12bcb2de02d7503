"""A trained run: load it back, evaluate and predict with it (``run.fit.train`` makes one)."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._html import notebook_progress
from .._types import Progress
from .._version import __version__
from ..data import Dataset, open_rgb
from ..errors import RunError, UnknownBackboneError
from ..features import FeatureCache, cache_key
from ..features.runtime import Runtime
from ..models import DEFAULT_BACKBONE, ImageClassifier, create_backbone, resolve_class
from ..models.confidence import Confidence
from . import evaluation, prediction, store
from .evaluation import Evaluation, check_classes, summary, unseen_line  # noqa: F401  (0.1 found these here)
from .prediction import Photo, Prediction, Scored  # noqa: F401
from .record import BackboneInfo, RunRecord

if TYPE_CHECKING:  # the notebook methods' result types, from the modules those methods call
    from ..inspect.dream import Dream, DreamConfig
    from ..inspect.gradcam import CAM


class Run:
    """A trained classifier with its metadata; what ``train`` returns and ``load`` reads.

    Attributes:
        model: the network (pixels in [0, 1] -> logits over ``classes``).
        record: everything recorded about how it was made (backbone, data, phases, metrics...).
        directory: where it is saved, if it is.
        confidence: temperature and "none of these" threshold (a run made before them: neither).
        tta: test-time augmentation where a call does not say: False, True (every extra view) or how many
            extra views (``features.views``) to average with the plain one; set it with ``with_tta``.
    """

    def __init__(self, model: ImageClassifier, record: RunRecord | dict[str, Any], directory: Path | None = None, confidence: Confidence | None = None) -> None:
        self.model = model
        self.record = record if isinstance(record, RunRecord) else RunRecord.from_dict(record)
        self.directory = directory
        self.confidence = confidence if confidence is not None else Confidence.from_record(self.record.confidence)
        self.tta: bool | int = False

    def with_tta(self, tta: bool | int = True) -> Run:
        """This run (sharing its model) predicting and evaluating with ``tta`` unless a call says otherwise:
        ``run.with_tta().evaluate(data)`` scores averaged views."""
        from ..features.views import view_names

        view_names(tta)  # a wrong count is refused here, not at the first prediction
        other = copy.copy(self)
        other.tta = tta
        return other

    @property
    def meta(self) -> dict[str, Any]:
        """The record as the plain dict ``model.json`` holds (a fresh copy: change ``record`` instead)."""
        return self.record.to_dict()

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def __repr__(self) -> str:
        where = f", directory={str(self.directory)!r}" if self.directory else ""
        return f"Run(backbone={self.record.backbone.name!r}, classes={len(self.classes)}{where})"

    def __rich__(self) -> str:
        """How the run was made and its held-out score (what ``transferlab train`` prints)."""
        return summary(self.record, self.confidence, len(self.classes), self.directory)

    def _repr_html_(self) -> str:
        """What ``__rich__`` says (how it was made, the held-out score, the confidence line), for Jupyter."""
        from .. import _html

        classes = ", ".join(self.classes[:8]) + (f" … ({len(self.classes)} in all)" if len(self.classes) > 8 else "")
        return _html.block(_html.markup(self.__rich__()), _html.text(f"classes: {classes}"), title=f"Run: {self.record.backbone.name}")

    def class_index(self, name: str | int) -> int:
        """Index of a class given by exact or fuzzy name ("siamese" -> "Siamese cat") or by number."""
        return resolve_class(self.classes, name)

    def load_image(self, photo: Photo) -> torch.Tensor:
        """A photo (file, PIL image or tensor) as the model sees it at evaluation: resized, centre-cropped, in [0, 1].

        Shape:
            returns (1, 3, H, W) float32.
        """
        return prediction.float_view(self.model, photo).unsqueeze(0)

    # -- features -----------------------------------------------------------------------------------
    def _cache(self, runtime: Runtime, cache_dir: Path | str | None) -> FeatureCache:
        return FeatureCache(cache_dir, cache_key(self.model, runtime, self.record.backbone.fingerprint))

    def predict_scored(
        self, paths: Sequence[Path | str], *, cache_dir: Path | str | None = None, precision: str = "auto", batch_size: int | None = None, progress: Progress | None = None,
        tta: bool | int | None = None,
    ) -> Scored:
        """Calibrated probabilities, in-distribution score and accept decision of image files.

        What ``predict``, ``evaluate`` and batch jobs build on; unreadable files are listed in ``failed``. ``tta``
        (default: ``self.tta``): True or N averages the features of the plain view and every (or N) extra views.
        """
        return prediction.predict_scored(self, paths, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=progress, tta=tta)

    def score_features(self, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pooled backbone features -> (calibrated probabilities (N, C), in-distribution scores (N,), accepted (N,)
        bool, raw logits (N, C)): the head in fp32 on the CPU, the run's temperature and threshold (the model stays put)."""
        s = prediction.score_features(self, features)
        return s.probs, s.scores, s.accepted, s.logits  # type: ignore[return-value]

    # -- public -------------------------------------------------------------------------------------
    def predict(
        self,
        photos: Photo | Sequence[Photo],
        k: int = 5,
        *,
        cache_dir: Path | str | None = None,
        precision: str = "auto",
        batch_size: int | None = None,
        progress: Progress | None = None,
        tta: bool | int | None = None,
    ) -> Prediction | list[Prediction]:
        """The top-k labels, "none of these" and "not sure" of photos (``Prediction``'s docstring says each field).

        ``photos``: image files (their features cached), PIL images, or tensors in [0, 1]. One photo (a path, a
        PIL image, a (3, H, W) tensor) gives one ``Prediction``; a list or a (B, 3, H, W) batch, a list of them.
        Files that cannot be decoded get only ``path`` and ``error``. In a notebook without ``progress``, a
        progress bar. ``tta`` (default: ``self.tta``): True or N averages the features of the plain view and
        every (or the first N) extra views (mirrored, shifted crops: ``features.views``), at 1 + N times the
        feature cost; False: the plain view alone.
        """
        progress = notebook_progress(progress)
        return prediction.predict(self, photos, k, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=progress, tta=tta)

    def predict_proba(
        self, photos: Photo | Sequence[Photo], *, cache_dir: Path | str | None = None, precision: str = "auto", batch_size: int | None = None,
        tta: bool | int | None = None,
    ) -> np.ndarray:
        """Class probabilities of photos (files, PIL images or [0, 1] tensors), exactly as ``predict`` computes them.

        Shape:
            returns (N, C) float, C = ``len(self.classes)``.

        Raises:
            DataError: a file cannot be decoded (``predict`` reports such files in place instead).
        """
        return prediction.predict_proba(self, photos, cache_dir=cache_dir, precision=precision, batch_size=batch_size, tta=tta)

    def load_photo(self, path: Path | str) -> torch.Tensor:
        """A photo at its own size in [0, 1] on the 8-bit grid: what ``models.PhotoClassifier`` takes.

        Shape:
            returns (1, 3, H, W) float32.
        """
        from ..models.photo import photo_tensor

        return photo_tensor(open_rgb(Path(path)))

    evaluate = evaluation.evaluate  # run.evaluate(dataset, split, out, ...): the function, bound (one signature, one docstring)

    def training_data(self) -> Dataset | None:
        """The data set this run was trained on, loaded again with the same splits; None when the run has no
        data record (a bare backbone) or the folder is gone."""
        data = self.record.data
        if not data or not Path(data.root).exists():
            return None
        from ..data import load_recorded

        return load_recorded(data)

    # -- the notebook's questions: each a thin call into the module that answers it --------------------
    def explain(self, photo: Photo, target: int | str | None = None, layer: str | None = None) -> CAM:
        """Grad-CAM of ``target`` (default: the predicted class) on ``photo`` as the model sees it (``inspect.gradcam``)."""
        from ..inspect.gradcam import gradcam

        return gradcam(self.model, self.load_image(photo), target, layer)

    def dream(self, target: int | str, config: DreamConfig | None = None, *, init: Photo | None = None, progress: Any = None) -> Dream:
        """The image that ``target``'s class is most sure of, from noise or from ``init`` (``inspect.dream``)."""
        from ..inspect.dream import DreamConfig, dream

        start = self.load_image(init) if init is not None else None
        return dream(self.model, target, config or DreamConfig(), init=start, progress=progress)

    def __getattr__(self, name: str) -> Any:
        if name in _MOVED:  # 0.1's notebook methods, now the task functions that take a run
            raise AttributeError(f"Run.{name} is now a function: call transferlab.{name}(run, {_MOVED[name]}) (import transferlab as tl)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def save(self, directory: Path | str) -> Path:
        """Write ``model.safetensors`` + ``model.json`` (+ ``confidence.safetensors``) to ``directory``; returns it."""
        self.record.confidence = self.confidence.to_record() if self.confidence.method or self.confidence.temperature != 1.0 else None
        self.directory = store.write_run(directory, self.model, self.record, self.confidence)
        return self.directory


_MOVED = {"attack": "photo, target, ...", "robustness": "dataset, eps, ...", "export": "format, out, ...", "report": "out, ..."}


def load(directory: Path | str) -> Run:
    """Load a run directory written by ``train``/``Run.save`` (safetensors + JSON; nothing unpickled)."""
    model, record, confidence = store.read_run(directory)
    return Run(model, record, Path(directory), confidence)


def from_backbone(name: str = DEFAULT_BACKBONE, weights: Path | str | None = None) -> Run:
    """A "run" that is just a pretrained backbone with its ImageNet head, for predicting ImageNet classes."""
    backbone = create_backbone(name, weights)
    if not backbone.model.classes:
        raise RunError(f"{name!r} has no classification head to predict with — train a run on your data first")
    record = RunRecord(backbone=BackboneInfo(name, backbone.arch, backbone.weights), strategy="pretrained", transferlab_version=__version__)
    return Run(backbone.model, record)


def open_model(spec: Path | str, weights: Path | str | None = None) -> Run:
    """A run folder, or a backbone name (its ImageNet head): what every ``MODEL`` argument accepts."""
    text = str(spec)
    path = Path(text)
    if path.is_dir():
        return load(path)
    if not text.startswith(("hf-hub:", "hf_hub:")) and ("/" in text or text.startswith(".") or path.exists()):
        raise RunError(f"no run folder at {text} — give a run made by `transferlab train` or a backbone name")
    try:
        return from_backbone(text, weights)
    except UnknownBackboneError as err:  # neither: either may have been meant, so the message names both
        names = f"did you mean {', '.join(err.close)}?" if err.close else "`transferlab backbones` lists them"
        raise RunError(f"no run folder {text!r} and no backbone of that name — give a run folder made by `transferlab train`, or a backbone name ({names})") from err


def default_run_dir(dataset: Dataset, backbone: str, root: Path = Path("runs")) -> Path:
    """``runs/<data>-<backbone>``, numbered so an earlier run is never overwritten."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{dataset.root.name}-{backbone}")
    candidate, n = root / base, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{base}-{n}"
    return candidate
