"""Export a run for deployment (ONNX or TorchScript), check the copy agrees with PyTorch, predict with it.

The exported graph is the whole classifier, normalisation included (the one pixel-space rule): pixels in
[0, 1] -> ``logits`` and ``score``, the run's in-distribution score (the kNN bank, class means or precision
matrix are constants of the graph: a matrix product and a max, or a quadratic form). The class names, the
preprocessing record, the temperature, the "none of these" threshold and the "not sure" setting travel
inside the file (ONNX metadata, TorchScript extra file), so ``OnnxModel`` answers from the ``.onnx`` alone,
through the same ``run.prediction.score`` as ``Run.predict``: same probabilities, same "none of these".
A TorchScript file's ``forward`` gives the logits; its ``scored`` method gives (logits, score).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.decode import BadImageError, os_reason
from ..errors import ConfigError, DataError, RunError
from ..features import load_image
from ..models.confidence import Confidence
from ..models.preprocess import Preprocess
from ..models.state import inference_copy
from ..run.prediction import DEFAULT_UNSURE, Prediction, predictions, score, score_features, unsure_setting
from ..run.run import Run

log = logging.getLogger(__name__)

FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
TOLERANCE = 1e-3  # max |Δlogit| (and |Δscore| / max(1, |score|)) accepted between PyTorch and the export (fp32 both sides; measured ~1e-5)
OPSET = 17
_META_KEY = "transferlab"


@dataclass
class Parity:
    """How the exported model agrees with the PyTorch run on ``n`` images of ``source``."""

    source: str  # e.g. "test split of /data/pets", "3 given images", "8 random images"
    n: int
    top1_agree: int  # images whose top-1 class is the same in both
    max_abs_logit_diff: float
    tolerance: float
    max_score_diff: float | None = None  # max |Δscore| / max(1, |score|) of the in-distribution score; None: the file has none
    accept_agree: int | None = None  # images both accept or both call "none of these"

    @property
    def ok(self) -> bool:
        scores_ok = self.max_score_diff is None or (self.max_score_diff <= self.tolerance and self.accept_agree == self.n)
        return self.top1_agree == self.n and self.max_abs_logit_diff <= self.tolerance and scores_ok

    def summary(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


@dataclass
class Export:
    """An exported model file and its parity check (``None`` when the check was skipped)."""

    path: Path
    format: str
    seconds: float
    parity: Parity | None

    def __rich__(self) -> str:
        """What was written, and the parity verdict (as ``transferlab export`` prints it)."""
        from rich.markup import escape

        size = self.path.stat().st_size / 1e6 if self.path.exists() else 0.0
        text = f"wrote [bold]{escape(str(self.path))}[/] ({self.format}, {size:.1f} MB, {self.seconds:.1f} s)"
        p = self.parity
        if p:
            verdict = "[green]parity ok[/]" if p.ok else "[red]parity FAILED[/]"
            text += f"\n{verdict}: same top-1 on {p.top1_agree}/{p.n} ({escape(p.source)}); max |Δlogit| {p.max_abs_logit_diff:.2e} (tolerance {p.tolerance:g})"
            if p.max_score_diff is not None:
                text += f"; in-distribution score: max difference {p.max_score_diff:.2e}, same 'none of these' decision on {p.accept_agree}/{p.n}"
        return text


def export(
    run: Run,
    format: str = "onnx",
    out: Path | str | None = None,
    *,
    check: bool = True,
    images: Sequence[Path | str] | None = None,
    limit: int | None = None,
    tolerance: float = TOLERANCE,
) -> Export:
    """Write ``run`` as ONNX or TorchScript (default: into the run folder) and check it against PyTorch.

    The check compares logits, in-distribution scores and "none of these" decisions on the run's evaluation split when its data is still where it was
    trained (all of it, or its first ``limit`` images), else on ``images``, else on random pixels (said in ``source``).

    Raises:
        ConfigError: unknown format, or no output path for a run that has no folder.
        RunError: the exporter or runtime is not installed.
    """
    if format not in FORMATS:
        raise ConfigError(f"expected format in {tuple(FORMATS)}, got {format!r}")
    if out is None:
        if run.directory is None:
            raise ConfigError("this model has no run folder — give an output path (--out FILE)")
        out = run.directory / FORMATS[format]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = inference_copy(run.model)  # fp32 on the CPU in eval mode; the caller's model stays as it is
    h, w = model.preprocess.input_size
    example = torch.rand(2, 3, h, w)
    scoring = ScoredClassifier(model, run.confidence)
    meta = json.dumps({
        "classes": run.classes, "preprocess": model.preprocess.to_dict(), "backbone": run.record.backbone.name, "temperature": run.confidence.temperature,
        "confidence": run.confidence.to_record(), "unsure_below": unsure_setting(run),
    })
    started = time.perf_counter()
    if format == "onnx":
        _export_onnx(scoring, example, out, meta)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about timm's shape asserts, which are constant here
            traced = torch.jit.trace_module(_LogitsFirst(scoring), {"forward": example, "scored": example})
        traced.save(str(out), _extra_files={"transferlab.json": meta})
    seconds = time.perf_counter() - started
    parity = check_parity(run, out, format, images=images, limit=limit, tolerance=tolerance) if check else None
    return Export(out, format, seconds, parity)


class ScoredClassifier(torch.nn.Module):
    """What is exported: pixels in [0, 1] -> (logits, in-distribution score), the score as ``Confidence.score``
    computes it, its tensors (kNN bank, class means, precision) held as buffers so they travel in the graph.

    Shape:
        input (B, 3, H, W) in [0, 1]; returns (B, C) logits and (B,) scores.
    """

    def __init__(self, model: torch.nn.Module, confidence: Confidence) -> None:
        super().__init__()
        self.model = model
        self.confidence = dataclasses.replace(confidence, tensors={})
        self.names = sorted(confidence.tensors)
        for name in self.names:
            self.register_buffer(f"score_{name}", confidence.tensors[name].detach().float().cpu().clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.features(x)  # (B, D) pooled
        logits = self.model.head(features)
        confidence = dataclasses.replace(self.confidence, tensors={n: getattr(self, f"score_{n}") for n in self.names})
        return logits, confidence.score(features, logits)


class _LogitsFirst(torch.nn.Module):
    """The TorchScript file: ``forward`` gives the logits (as before scores were exported), ``scored`` both."""

    def __init__(self, scoring: ScoredClassifier) -> None:
        super().__init__()
        self.scoring = scoring

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scoring.model(x)

    def scored(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scoring(x)


def _export_onnx(model: torch.nn.Module, example: torch.Tensor, out: Path, meta: str) -> None:
    try:
        import onnx
    except ImportError as err:
        raise RunError("ONNX export needs the onnx package — pip install onnx onnxruntime (or, in a clone, pip install -e '.[export]')") from err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated in favour of dynamo, which is slower and needs more packages
        torch.onnx.export(
            model, (example,), str(out), dynamo=False, opset_version=OPSET, input_names=["pixels"], output_names=["logits", "score"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}, "score": {0: "batch"}},
        )
    proto = onnx.load(str(out))
    entry = proto.metadata_props.add()
    entry.key, entry.value = _META_KEY, meta
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))


def check_parity(
    run: Run, path: Path | str, format: str = "onnx", *, images: Sequence[Path | str] | None = None,
    limit: int | None = None, tolerance: float = TOLERANCE, batch_size: int = 16,
) -> Parity:
    """Logits, in-distribution scores and "none of these" decisions of the exported model vs ``Run.predict``'s
    own arithmetic (``run.prediction.score_features``) on the same pixels (see ``export`` for which images)."""
    model = inference_copy(run.model)  # fp32 on the CPU in eval mode; the caller's model stays as it is
    exported = _load_exported(Path(path), format)
    agree, worst, n, source = 0, 0.0, 0, ""
    score_worst: float | None = None
    accept_agree = 0
    for x, source in _parity_batches(run, images, limit, batch_size):  # x: (B, 3, H, W) in [0, 1]
        with torch.no_grad():
            ref = score_features(run, model.features(x))
        logits, scores = exported(x)
        agree += int((ref.logits.argmax(1) == logits.argmax(1)).sum())
        worst = max(worst, float(np.abs(ref.logits - logits).max()))
        if scores is not None:
            got = score(run.confidence, torch.from_numpy(logits), scores=torch.from_numpy(scores))
            score_worst = max(score_worst or 0.0, float((np.abs(ref.scores - got.scores) / np.maximum(1.0, np.abs(ref.scores))).max()))
            accept_agree += int((ref.accepted == got.accepted).sum())
        n += len(x)
    return Parity(source, n, agree, worst, tolerance, score_worst, accept_agree if score_worst is not None else None)


def _load_exported(path: Path, format: str):
    """A function: pixels (B, 3, H, W) in [0, 1] -> (logits (B, C), scores (B,) or None for a file without them)."""
    if format == "onnx":
        model = OnnxModel(path)
        return lambda x: model.outputs(x.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream; still the format asked for
        scripted = torch.jit.load(str(path))

    def run_scripted(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        with torch.no_grad():
            if not hasattr(scripted, "scored"):  # exported before scores were
                return scripted(x).numpy(), None
            logits, scores = scripted.scored(x)
            return logits.numpy(), scores.numpy()

    return run_scripted


def _parity_batches(run: Run, images: Sequence[Path | str] | None, limit: int | None, batch_size: int) -> Iterator[tuple[torch.Tensor, str]]:
    """Batches of evaluation views in [0, 1], decoded as ``predict`` decodes them, each with where they came from."""
    paths, source = _evaluation_paths(run, limit)
    if not paths and images:
        paths = [Path(p) for p in images][:limit]
        source = f"{len(paths)} given images"
    views: list[torch.Tensor] = []
    yielded = False
    for i, p in enumerate(paths):
        try:
            views.append(load_image(Path(p), run.model.preprocess).float().div(255))
        except BadImageError:
            pass  # skipped for both sides alike
        if views and (len(views) == batch_size or i == len(paths) - 1):
            yield torch.stack(views), source
            views, yielded = [], True
    if not yielded:
        h, w = run.model.preprocess.input_size
        log.warning("no images to check the export on; using 8 random images")
        yield torch.rand(8, 3, h, w, generator=torch.Generator().manual_seed(0)), "8 random images (the run's data was not found)"


def _evaluation_paths(run: Run, limit: int | None) -> tuple[list[Path], str]:
    """The run's evaluation split if its data is still where it was trained, else ``([], "")``."""
    try:
        data = run.training_data()
        if data is None:
            return [], ""
        samples, split = data.evaluation_split((run.record.metrics or {}).get("split"))
    except (DataError, TypeError) as err:
        log.warning("cannot reopen the run's data for the parity check: %s", err)
        return [], ""
    paths = [s.path for s in samples][:limit]
    return paths, f"{len(paths)} images of the {split} split of {data.root}"


class OnnxModel:
    """An exported ``.onnx`` run on onnxruntime: the same ``predict`` as ``Run``, without PyTorch's network in the loop."""

    def __init__(self, path: Path | str, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise RunError("--runtime onnx needs onnxruntime — pip install onnx onnxruntime (or, in a clone, pip install -e '.[export]')") from err
        path = Path(path)
        if path.is_dir():
            path = path / FORMATS["onnx"]
        if not path.is_file():
            raise RunError(f"no ONNX model at {path} — run `transferlab export RUN --format onnx` first")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            embedded = json.loads(self.session.get_modelmeta().custom_metadata_map[_META_KEY])
        except (KeyError, json.JSONDecodeError) as err:
            raise RunError(f"{path} was not exported by transferlab (no class names inside) — export it with `transferlab export`") from err
        except Exception as err:  # onnxruntime raises its own untyped errors for unreadable files
            raise RunError(f"cannot load {path}: {err}") from err
        self.path = path  # what export wrote into the file: classes, preprocessing, confidence, 'not sure'
        self.classes: list[str] = embedded["classes"]
        self.preprocess = Preprocess.from_dict(embedded["preprocess"])
        self.has_score = "score" in {o.name for o in self.session.get_outputs()}  # older exports give logits only: no "none of these"
        record = embedded.get("confidence") if self.has_score else None  # temperature, score method, threshold (the score's tensors are in the graph)
        self.confidence = Confidence.from_record(record) if record else Confidence(temperature=float(embedded.get("temperature", 1.0)))
        self.unsure_below = float(embedded.get("unsure_below", DEFAULT_UNSURE))

    @property
    def temperature(self) -> float:
        return self.confidence.temperature

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """Shape: pixels (B, 3, H, W) float32 in [0, 1] -> (B, C) logits."""
        return self.outputs(pixels)[0]

    def outputs(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Shape: pixels (B, 3, H, W) float32 in [0, 1] -> (B, C) logits, (B,) in-distribution scores (None: an export without them)."""
        out = self.session.run(None, {"pixels": np.ascontiguousarray(pixels, dtype=np.float32)})
        return out[0], (out[1] if self.has_score else None)

    def predict(self, paths: Sequence[Path | str], k: int = 5, batch_size: int = 16) -> list[Prediction]:
        """One ``Prediction`` per image, in input order, as ``Run.predict`` gives it (same decoding, same
        ``run.prediction.score``); undecodable files get ``path`` and ``error``."""
        rows: dict[int, Prediction] = {}
        for start in range(0, len(paths), batch_size):
            chunk = [Path(p) for p in paths[start : start + batch_size]]
            views, ok = [], []
            for i, p in enumerate(chunk, start):
                try:
                    views.append(load_image(p, self.preprocess).numpy())
                    ok.append(i)
                except BadImageError as err:
                    rows[i] = Prediction(path=str(p), error=err.reason)
                except OSError as err:
                    rows[i] = Prediction(path=str(p), error=os_reason(err, p))
            if views:
                logits, scores = self.outputs(np.stack(views).astype(np.float32) / 255)  # (B, 3, H, W) in [0, 1], as the torch path
                scored = score(self.confidence, torch.from_numpy(logits), scores=None if scores is None else torch.from_numpy(scores))
                rows.update(zip(ok, predictions(scored, self.classes, k, unsure_below=self.unsure_below, paths=[str(Path(paths[i])) for i in ok])))
        return [rows[i] for i in range(len(paths))]
