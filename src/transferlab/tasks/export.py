"""Export a run for deployment (ONNX or TorchScript), check the copy agrees with PyTorch, predict with it.

The exported graph is the whole classifier: pixels in [0, 1] -> logits, normalisation included (the one
pixel-space rule). The class names and the preprocessing record travel inside the file (ONNX metadata,
TorchScript extra file), so ``OnnxModel`` can predict from the ``.onnx`` alone.

Calibration and "none of these": the graph outputs raw logits; the run's softmax temperature travels in
the metadata and ``OnnxModel`` divides by it, so its probabilities match ``Run.predict``. The
out-of-distribution rejection is not exported (it needs the pooled features and the run's stored
statistics): ``predict --runtime onnx`` labels every image, and says so.
"""

from __future__ import annotations

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

from ..data import open_rgb
from ..data.decode import BadImageError
from ..errors import ConfigError, DataError, RunError
from ..models.classes import top_k
from ..models.preprocess import Preprocess
from ..models.state import inference_copy
from ..run.run import Run

log = logging.getLogger(__name__)

FORMATS = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
TOLERANCE = 1e-3  # max |Δlogit| accepted between PyTorch and the export (fp32 both sides; measured ~1e-5)
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

    @property
    def ok(self) -> bool:
        return self.top1_agree == self.n and self.max_abs_logit_diff <= self.tolerance

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

    The check compares logits on the run's evaluation split when its data is still where it was
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
    meta = json.dumps({"classes": run.classes, "preprocess": model.preprocess.to_dict(), "backbone": run.meta["backbone"]["name"], "temperature": run.confidence.temperature})
    started = time.perf_counter()
    if format == "onnx":
        _export_onnx(model, example, out, meta)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about timm's shape asserts, which are constant here
            traced = torch.jit.trace(model, example)
        traced.save(str(out), _extra_files={"transferlab.json": meta})
    seconds = time.perf_counter() - started
    parity = check_parity(run, out, format, images=images, limit=limit, tolerance=tolerance) if check else None
    return Export(out, format, seconds, parity)


def _export_onnx(model: torch.nn.Module, example: torch.Tensor, out: Path, meta: str) -> None:
    try:
        import onnx
    except ImportError as err:
        raise RunError("ONNX export needs the onnx package — pip install 'transferlab[export]'") from err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated in favour of dynamo, which is slower and needs more packages
        torch.onnx.export(
            model, (example,), str(out), dynamo=False, opset_version=OPSET, input_names=["pixels"], output_names=["logits"],
            dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
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
    """Logits of the exported model vs the PyTorch run on the same pixels (see ``export`` for which images)."""
    model = inference_copy(run.model)  # fp32 on the CPU in eval mode; the caller's model stays as it is
    exported = _load_exported(Path(path), format)
    agree, worst, n, source = 0, 0.0, 0, ""
    for x, source in _parity_batches(run, images, limit, batch_size):  # x: (B, 3, H, W) in [0, 1]
        with torch.no_grad():
            ref = model(x).numpy()
        got = exported(x)
        agree += int((ref.argmax(1) == got.argmax(1)).sum())
        worst = max(worst, float(np.abs(ref - got).max()))
        n += len(x)
    return Parity(source, n, agree, worst, tolerance)


def _load_exported(path: Path, format: str):
    if format == "onnx":
        model = OnnxModel(path)
        return lambda x: model.logits(x.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream; still the format asked for
        scripted = torch.jit.load(str(path))

    def run_scripted(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return scripted(x).numpy()

    return run_scripted


def _parity_batches(run: Run, images: Sequence[Path | str] | None, limit: int | None, batch_size: int) -> Iterator[tuple[torch.Tensor, str]]:
    """Batches of evaluation views in [0, 1], decoded as needed, each with where they came from."""
    paths, source = _evaluation_paths(run, limit)
    if not paths and images:
        paths = [Path(p) for p in images][:limit]
        source = f"{len(paths)} given images"
    views: list[torch.Tensor] = []
    yielded = False
    for i, p in enumerate(paths):
        try:
            views.append(run.model.preprocess.to_tensor(open_rgb(p)))
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
        samples, split = data.evaluation_split((run.meta.get("metrics") or {}).get("split"))
    except (DataError, TypeError) as err:
        log.warning("cannot reopen the run's data for the parity check: %s", err)
        return [], ""
    paths = [s.path for s in samples][:limit]
    return paths, f"{len(paths)} images of the {split} split of {data.root}"


class OnnxModel:
    """An exported ``.onnx`` run on onnxruntime: the same ``predict`` as ``Run``, without PyTorch in the loop."""

    def __init__(self, path: Path | str, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise RunError("--runtime onnx needs onnxruntime — pip install 'transferlab[export]'") from err
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
            meta = json.loads(self.session.get_modelmeta().custom_metadata_map[_META_KEY])
        except (KeyError, json.JSONDecodeError) as err:
            raise RunError(f"{path} was not exported by transferlab (no class names inside) — export it with `transferlab export`") from err
        except Exception as err:  # onnxruntime raises its own untyped errors for unreadable files
            raise RunError(f"cannot load {path}: {err}") from err
        self.path = path
        self.classes: list[str] = meta["classes"]
        self.preprocess = Preprocess.from_dict(meta["preprocess"])
        self.temperature = float(meta.get("temperature", 1.0))  # exports made before calibration: raw softmax

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """Shape: pixels (B, 3, H, W) float32 in [0, 1] -> (B, C) logits."""
        return self.session.run(None, {"pixels": np.ascontiguousarray(pixels, dtype=np.float32)})[0]

    def predict(self, paths: Sequence[Path | str], k: int = 5, batch_size: int = 16) -> list[dict[str, Any]]:
        """Top-k labels per image, as ``Run.predict`` (calibrated, but no "none of these": ``label`` is always
        the top class and ``in_distribution`` None); undecodable files get ``{"path", "error"}``."""
        k = min(k, len(self.classes))
        rows: list[dict[str, Any]] = []
        for start in range(0, len(paths), batch_size):
            chunk, views = [Path(p) for p in paths[start : start + batch_size]], []
            ok: list[int] = []
            for i, p in enumerate(chunk):
                try:
                    views.append(self.preprocess.to_tensor(open_rgb(p)).numpy())
                    ok.append(i)
                except BadImageError as err:
                    rows.append({"path": str(p), "error": str(err)})
            if views:
                logits = self.logits(np.stack(views)) / self.temperature
                probs = np.exp(logits - logits.max(1, keepdims=True))
                probs /= probs.sum(1, keepdims=True)
                for row, i in enumerate(ok):
                    top = top_k(probs[row], self.classes, k)
                    rows.append({"path": str(chunk[i]), "label": top[0]["label"], "closest": top[0]["label"], "prob": top[0]["prob"], "in_distribution": None, "score": None, "top": top})
        order = {str(Path(p)): n for n, p in enumerate(paths)}
        return sorted(rows, key=lambda r: order[r["path"]])
