"""One prediction, one way to score a photo.

``Run.predict``, the web service, the Ray rows and the ONNX runtime all turn network outputs into answers
through the two functions here: ``score`` (logits -> calibrated probabilities, the in-distribution score,
the "none of these" decision) and ``predictions`` (-> ``Prediction``). The head runs in fp32 on the CPU;
photos reach the network through one decoding rule (``features.load_image`` for files and uploads).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
from PIL import Image

from .._types import AsMapping, Progress
from ..errors import DataError, InputError
from ..models import ImageClassifier
from ..models.classes import top_k
from ..models.confidence import Confidence
from .record import ServeSettings

if TYPE_CHECKING:
    from .run import Run

Photo = Union[Path, str, Image.Image, torch.Tensor]  # a file, a PIL image, or a (3, H, W) / (1, 3, H, W) tensor in [0, 1]
DEFAULT_UNSURE = ServeSettings().unsure_below  # "not sure" below this top probability when the run stores no setting


@dataclass(frozen=True, eq=False)  # eq from Mapping: a prediction equals its dict form
class Ranked(AsMapping):
    """One of the top-k classes of a photo."""

    label: str
    index: int  # position in the run's class list
    prob: float  # calibrated probability

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "index": self.index, "prob": self.prob}


@dataclass(frozen=True, eq=False)
class Prediction(AsMapping):
    """What a run answers for one photo; ``to_dict()`` is its JSON form (``predict --json``, ``/predict``), and it
    reads like the dict 0.1 returned (``p["top"][0]["prob"]``).

    ``label`` is the top class, or None when the photo looks like none of the classes (``in_distribution``
    False); ``closest``/``prob`` are the top class and its calibrated probability either way. A file that
    could not be read has only ``path`` and ``error``.
    """

    path: str | None  # None for an in-memory photo
    label: str | None = None  # the top class; None: "none of these" (or an unreadable file)
    index: int | None = None  # the top class's position in the run's class list
    closest: str | None = None  # the top class, also when the photo is rejected
    prob: float | None = None  # its calibrated probability
    in_distribution: bool | None = None  # False: the in-distribution score is below the run's threshold
    score: float | None = None  # the in-distribution score; None when the run has no threshold
    top: tuple[Ranked, ...] = ()
    unsure: bool = False  # accepted, but the top probability is below the run's "not sure" setting
    error: str | None = None  # why the file could not be read

    def __getitem__(self, key: str) -> Any:
        if isinstance(key, int) and not isinstance(key, bool) and key == 0:  # integer keys are otherwise never valid
            warnings.warn("run.predict(one_photo) returns the Prediction itself since 0.2, not a one-item list: drop the [0]", DeprecationWarning, stacklevel=2)
            return self
        return super().__getitem__(key)

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "label": self.label, "index": self.index, "closest": self.closest, "prob": self.prob, "in_distribution": self.in_distribution,
                "score": self.score, "unsure": self.unsure, "top": [t.to_dict() for t in self.top]}


@dataclass
class Scored:
    """Calibrated probabilities, in-distribution score and accept decision of the readable images."""

    probs: np.ndarray  # (N_ok, C) temperature-scaled softmax
    scores: np.ndarray  # (N_ok,) in-distribution score, higher: more like the training images
    accepted: np.ndarray  # (N_ok,) bool: False means "none of these" (all True when the run has no threshold)
    ok: list[int] = field(default_factory=list)  # indices into the requested paths of the rows above
    failed: dict[Path, str] = field(default_factory=dict)  # unreadable file -> reason
    method: str = "msp"  # the score's name (models.confidence.METHODS)
    threshold: float | None = None  # None: the run rejects nothing
    logits: np.ndarray | None = None  # (N_ok, C) before the temperature
    hashes: list[str | None] = field(default_factory=list)
    features: torch.Tensor | None = None  # (N_ok, D) pooled backbone features of the rows above (the plain view's, also with views)
    views: tuple[str, ...] = ()  # extra views averaged with the plain one (test-time augmentation, ``tta``)


# -- the arithmetic every path shares -------------------------------------------------------------------
def head_logits(model: ImageClassifier, features: torch.Tensor) -> torch.Tensor:
    """The run's linear head on pooled features, in fp32 on the CPU (the model stays put). Shape: (N, D) -> (N, C)."""
    weight, bias = (t.detach().float().cpu() for t in (model.head.weight, model.head.bias))
    with torch.no_grad():
        return torch.nn.functional.linear(features.float().cpu(), weight, bias)


def score(confidence: Confidence, logits: torch.Tensor, *, features: torch.Tensor | None = None, scores: torch.Tensor | None = None) -> Scored:
    """Logits -> calibrated probabilities, in-distribution scores and the accept decision, in fp32.

    The score is computed from ``features`` (and the logits), or taken as given in ``scores`` (an exported
    graph computes it itself); msp and energy need neither.

    Shape:
        logits (N, C); features (N, D); scores (N,). The result's ``ok`` is ``range(N)``.

    Raises:
        InputError: neither ``features`` nor ``scores`` for a score that needs the features (knn, mahalanobis).
    """
    if scores is None and features is None and confidence.method in ("knn", "mahalanobis"):
        raise InputError(f"expected pooled features or scores for the {confidence.method} score, got neither")
    logits = torch.as_tensor(logits).float().cpu()
    with torch.no_grad():
        if scores is None:
            scores = confidence.score(features.float().cpu() if features is not None else None, logits)  # type: ignore[arg-type]
        scores = torch.as_tensor(scores).float().cpu().reshape(-1)
        probs = confidence.logits_to_probs(logits)
        accepted = confidence.accepted(scores)
    return Scored(probs.numpy(), scores.numpy(), accepted.numpy(), list(range(len(logits))), method=confidence.method or "msp",
                  threshold=confidence.threshold if confidence.rejects else None, logits=logits.numpy())


def predictions(scored: Scored, classes: Sequence[str], k: int = 5, *, unsure_below: float = DEFAULT_UNSURE, paths: Sequence[str | None] | None = None) -> list[Prediction]:
    """One ``Prediction`` per row of ``scored`` (``paths``: one per row, default None)."""
    out = []
    rejects = scored.threshold is not None
    for row, probs in enumerate(scored.probs):
        top = tuple(Ranked(**t) for t in top_k(probs, list(classes), k))
        inside = bool(scored.accepted[row])
        out.append(Prediction(
            path=paths[row] if paths is not None else None, label=top[0].label if inside else None, index=top[0].index, closest=top[0].label, prob=top[0].prob,
            in_distribution=inside, score=float(scored.scores[row]) if rejects else None, top=top, unsure=inside and top[0].prob < unsure_below,
        ))
    return out


def unsure_setting(run: Run) -> float:
    """The run's "not sure" setting (``RunRecord.serve``), else ``DEFAULT_UNSURE``."""
    return float((run.record.serve or ServeSettings()).unsure_below)


def score_features(run: Run, features: torch.Tensor) -> Scored:
    """Pooled backbone features -> ``Scored`` through the run's head, temperature and threshold."""
    return score(run.confidence, head_logits(run.model, features), features=features)


def predict_features(
    run: Run, features: torch.Tensor, k: int = 5, paths: Sequence[str | None] | None = None, *, unsure_below: float | None = None,
) -> tuple[Scored, list[Prediction]]:
    """Pooled backbone features -> the numbers and the ``Prediction`` of each photo: what every front end calls.

    ``unsure_below``: the "not sure" setting (default: the run's, ``unsure_setting``).
    """
    scored = score_features(run, features)
    return scored, predictions(scored, run.classes, k, unsure_below=unsure_setting(run) if unsure_below is None else unsure_below, paths=paths)


# -- photos: files, PIL images and tensors ------------------------------------------------------------
def predict_scored(
    run: Run, paths: Sequence[Path | str], *, cache_dir: Path | str | None = None, precision: str = "auto", batch_size: int | None = None, progress: Progress | None = None,
    tta: bool | int | None = None,
) -> Scored:
    """``Run.predict_scored``: image files through the feature cache, then ``score``; ``tta`` (default: the
    run's ``tta``): the features averaged over the plain view and that many extra views (True: all), each cached."""
    from ..features import extract_features, pick_runtime
    from ..features.views import view_names

    paths = [Path(p) for p in paths]
    runtime = pick_runtime(precision=precision)
    views = view_names(run.tta if tta is None else tta)
    cache = run._cache(runtime, cache_dir)
    cb = (lambda d, t: progress("features", d, t)) if progress else None
    ex = extract_features(run.model, paths, cache=cache, runtime=runtime, batch_size=batch_size, progress=cb)
    features = ex.features
    if views:
        extra = [extract_features(run.model, paths, cache=cache, runtime=runtime, batch_size=batch_size, view=v,
                                  progress=(lambda d, t, v=v: progress(f"view {v}", d, t)) if progress else None) for v in views]
        features = average_views(ex.ok, ex.features, [(e.ok, e.features) for e in extra])
    scored = score_features(run, features)
    scored.ok, scored.failed, scored.hashes, scored.features, scored.views = list(ex.ok), dict(ex.failed), list(ex.hashes), ex.features, views
    return scored


def average_views(ok: list[int], plain: torch.Tensor, views: Sequence[tuple[list[int], torch.Tensor]]) -> torch.Tensor:
    """Each photo's features averaged over its plain view and its extra views (a view that failed to decode is
    left out of that photo's mean). Averaging features is averaging the head's logits, the head being linear, so the
    temperature and the in-distribution score then apply as they do to one view.

    Shape:
        plain (N_ok, D), its rows the positions ``ok``; each view (its ok, (N_view, D)); returns (N_ok, D).
    """
    total, count = plain.double().clone(), torch.ones(len(ok), 1, dtype=torch.float64)
    row = {pos: i for i, pos in enumerate(ok)}
    for view_ok, feats in views:
        kept = [j for j, pos in enumerate(view_ok) if pos in row]
        at = torch.tensor([row[view_ok[j]] for j in kept], dtype=torch.long)
        total.index_add_(0, at, feats[kept].double())
        count.index_add_(0, at, torch.ones(len(kept), 1, dtype=torch.float64))
    return (total / count).to(plain.dtype)


def predict(
    run: Run, photos: Photo | Sequence[Photo], k: int = 5, *,
    cache_dir: Path | str | None = None, precision: str = "auto", batch_size: int | None = None, progress: Progress | None = None, tta: bool | int | None = None,
) -> Prediction | list[Prediction]:
    """``Run.predict``: one ``Prediction`` for one photo, else one per photo in input order (a file that cannot
    be read: ``path`` and ``error``)."""
    single = is_one_photo(photos)
    photos = photo_list(photos)
    found, failed = _mixed(run, photos, k, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=progress, tta=tta)
    out = [found[i][1] if i in found else Prediction(path=str(photos[i]), error=failed[i]) for i in range(len(photos))]
    return out[0] if single else out


def predict_proba(
    run: Run, photos: Photo | Sequence[Photo], *, cache_dir: Path | str | None = None, precision: str = "auto", batch_size: int | None = None, tta: bool | int | None = None,
) -> np.ndarray:
    """``Run.predict_proba``: (N, C) calibrated probabilities, as ``predict`` computes them."""
    photos = photo_list(photos)
    found, failed = _mixed(run, photos, 1, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=None, tta=tta)
    if failed:
        i, reason = next(iter(failed.items()))
        raise DataError(f"cannot read {photos[i]}: {reason}")
    return np.stack([found[i][0] for i in range(len(photos))]) if photos else np.zeros((0, len(run.classes)))


def _mixed(run: Run, photos: list[Photo], k: int, *, cache_dir: Path | str | None, precision: str, batch_size: int | None, progress: Progress | None,
           tta: bool | int | None = None):
    """Files (features cached, as ``predict`` always did) and in-memory images scored in input order:
    ({position: (probs (C,), Prediction)}, {position: reason} for unreadable files); ``tta`` as ``predict_scored``."""
    from ..features import features_of_images, pick_runtime
    from ..features.views import view_names

    files = [i for i, p in enumerate(photos) if isinstance(p, (str, Path))]
    memory = sorted(set(range(len(photos))) - set(files))
    for i in memory:
        if not isinstance(photos[i], (Image.Image, torch.Tensor)):
            raise InputError(f"expected image paths, PIL images or [0, 1] tensors, got {type(photos[i]).__name__}")
    found: dict[int, tuple[np.ndarray, Prediction]] = {}
    failed: dict[int, str] = {}
    if files:
        paths = [Path(photos[i]) for i in files]
        scored = predict_scored(run, paths, cache_dir=cache_dir, precision=precision, batch_size=batch_size, progress=progress, tta=tta)
        rows = predictions(scored, run.classes, k, unsure_below=unsure_setting(run), paths=[str(photos[files[j]]) for j in scored.ok])
        found.update({files[j]: (scored.probs[row], rows[row]) for row, j in enumerate(scored.ok)})
        failed.update({files[j]: scored.failed.get(paths[j], "not processed") for j in range(len(files)) if files[j] not in found})
    if memory:
        runtime = pick_runtime(precision=precision)
        features = features_of_images(run.model, torch.stack([float_view(run.model, photos[i]) for i in memory]), runtime)
        names = view_names(run.tta if tta is None else tta)
        if names:
            extra = [features_of_images(run.model, torch.stack([extra_view(run.model, photos[i], v) for i in memory]), runtime) for v in names]
            features = average_views(list(range(len(memory))), features, [(list(range(len(memory))), f) for f in extra])
        scored, rows = predict_features(run, features, k)
        found.update({i: (scored.probs[row], rows[row]) for row, i in enumerate(memory)})
    return found, failed


def float_view(model: ImageClassifier, photo: Photo) -> torch.Tensor:
    """(3, H, W) float evaluation view in [0, 1]; a tensor already at the input size is taken as it is."""
    view = as_batch(photo)[0] if _is_view(photo, model) else uint8_view(model, photo)  # type: ignore[arg-type]
    return view.float().div(255) if view.dtype == torch.uint8 else view.float()


def extra_view(model: ImageClassifier, photo: Photo, view: str) -> torch.Tensor:
    """(3, H, W) float ``view`` (``features.views``) of an in-memory photo, in [0, 1]; a tensor is first made a PIL
    image, as ``uint8_view`` does with one not at the input size (one at the input size is then cropped again)."""
    from PIL import ImageOps

    from ..data.decode import to_rgb
    from ..features.views import view_uint8
    from ..models.images import to_pil

    if view == "flip":  # exactly the plain view mirrored, a tensor at the input size included
        return float_view(model, photo).flip(-1)  # (3, H, W): along W
    image = to_rgb(ImageOps.exif_transpose(photo)) if isinstance(photo, Image.Image) else to_pil(as_batch(photo)[0])  # type: ignore[arg-type]
    return view_uint8(image, model.preprocess, view).float().div(255)


def uint8_view(model: ImageClassifier, photo: Photo) -> torch.Tensor:
    """(3, H, W) uint8 evaluation view of a file (decoded as ``predict`` decodes it), a PIL image, or a tensor at
    any size (through 8 bits)."""
    from PIL import ImageOps

    from ..data.decode import to_rgb
    from ..features import load_image
    from ..models.images import to_pil

    if isinstance(photo, (str, Path)):
        return load_image(Path(photo), model.preprocess)
    if isinstance(photo, Image.Image):
        return model.preprocess.to_uint8(to_rgb(ImageOps.exif_transpose(photo)))
    return model.preprocess.to_uint8(to_pil(as_batch(photo)[0]))


def is_one_photo(photos: Photo | Sequence[Photo]) -> bool:
    """A single photo (a path, a PIL image, a (3, H, W) tensor), not a list or a (B, 3, H, W) batch."""
    return isinstance(photos, (str, Path, Image.Image)) or (isinstance(photos, torch.Tensor) and photos.ndim == 3)


def photo_list(photos: Photo | Sequence[Photo]) -> list[Photo]:
    """One photo, a list of them, or a (B, 3, H, W) batch tensor, as a list of single photos."""
    if isinstance(photos, (str, Path, Image.Image)):
        return [photos]
    if isinstance(photos, torch.Tensor):
        return list(photos) if photos.ndim == 4 else [photos]
    return list(photos)


def as_batch(image: torch.Tensor) -> torch.Tensor:
    """A (3, H, W) or (1, 3, H, W) image tensor in [0, 1] (or uint8) as (1, 3, H, W).

    Raises:
        InputError: another shape, or float values outside [0, 1].
    """
    batch = image.unsqueeze(0) if image.ndim == 3 else image
    if batch.ndim != 4 or batch.shape[:2] != (1, 3):
        raise InputError(f"expected an image tensor of shape (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
    if batch.dtype != torch.uint8 and (batch.min() < 0 or batch.max() > 1):
        raise InputError("expected pixel values in [0, 1] (divide 8-bit pixels by 255)")
    return batch.detach().cpu()


def _is_view(photo: Photo, model: ImageClassifier) -> bool:
    """A tensor already at the model's input size: taken as the evaluation view, not resized again."""
    return isinstance(photo, torch.Tensor) and tuple(photo.shape[-2:]) == tuple(model.preprocess.input_size)
