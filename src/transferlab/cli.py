"""The ``transferlab`` command: one short function per command over the public Python API."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

import transferlab as tl

from ._cli_options import App, Renamed, choice, config_options, field_choices, field_help, renamed
from ._options import option
from ._version import __version__
from ._io import display_path
from .data.files import expand_image_paths
from .data.options import LoadOptions
from .errors import TransferlabError
from .inspect.dream.config import DreamConfig
from .models.defaults import DEFAULT_ACCEPT, DEFAULT_BACKBONE, DEFAULT_FEATURES, DEFAULT_METHOD
from .run.config import TrainConfig
from .train.config import FinetuneConfig

app = App(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown", help="Transfer learning from a folder of photos: train, evaluate, predict.")
datasets_app = App(no_args_is_help=True, help="Download datasets (needs internet).")
app.add_typer(datasets_app, name="datasets")
out = Console(soft_wrap=True)  # results
err = Console(stderr=True, soft_wrap=True)  # progress and messages
_state = {"debug": False}

FT = FinetuneConfig()
# The grammar (tests/test_cli_grammar.py checks it): arguments are DATA, RUN, MODEL (a run folder or a backbone
# name), IMAGE; a flag means one thing in every command that has it, so shared flags are defined once here.
DATA_HELP = "Dataset folder: class sub-folders, Oxford-IIIT Pet, or PetImages."
DataArg = Annotated[Path, typer.Argument(metavar="DATA", help=DATA_HELP)]
RunArg = Annotated[Path, typer.Argument(metavar="RUN", help="Run folder written by `transferlab train`.")]
ModelArg = Annotated[str, typer.Argument(metavar="MODEL", help="A run folder, or a backbone name (its ImageNet classes).")]
CacheOpt = Annotated[Optional[Path], typer.Option(help="Feature cache folder [default: $TRANSFERLAB_CACHE or ~/.cache/transferlab].")]
PrecisionOpt = Annotated[field_choices(TrainConfig, "precision"), typer.Option(help=field_help(TrainConfig, "precision"))]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]
FeaturesOpt = Annotated[field_choices(TrainConfig, "features"), typer.Option(help=field_help(TrainConfig, "features"))]
WEIGHTS_HELP = "Backbone weights file (.safetensors or .pth state dict)"
WeightsOpt = Annotated[Optional[Path], typer.Option(help=WEIGHTS_HELP + " [default: bundled, else timm's hub; a run folder brings its own].")]
BACKBONE_HELP = "Bundled efficientnet_lite0/1/2 (offline) or any timm model name"
BackboneOpt = Annotated[str, typer.Option("--backbone", "-b", metavar="NAME", help=BACKBONE_HELP + ".")]
AcceptOpt = Annotated[float, typer.Option(help=field_help(TrainConfig, "accept"))]
DecoderOpt = Annotated[choice(("auto", "cpu", "gpu")), typer.Option(help=(  # features.device_input.DECODERS
    "Where image files are decoded and resized: auto (on the GPU when the model runs on one), cpu, or gpu."))]
OodScoreOpt = Annotated[field_choices(TrainConfig, "ood_score"), typer.Option("--ood-score", help=field_help(TrainConfig, "ood_score"))]
SPLITS = ("auto", "test", "val", "train", "all")
SplitOpt = Annotated[choice(SPLITS), typer.Option(help="Which images of DATA (auto: test, else val, else all).")]
LIMIT_HELP = "Only the first N images"


def _and(shared: str, here: str) -> str:
    """A shared flag's help (what it means everywhere), then what it does in this command."""
    return f"{shared.rstrip('.')}; {here}"

FIX_LIST_HELP = "Write the paths to fix to FILE, one a line"


class RateColumn(ProgressColumn):
    """images/s of a task."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} img/s" if speed else "", style="progress.data.speed")


@contextmanager
def progress_bar(quiet: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A (stage, done, total) callback drawing one rich bar per stage."""
    if quiet:
        yield None
        return
    labels = {"features": "features", "head": "fitting head"}  # fine-tuning stages are "epoch N"
    with Progress(TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeRemainingColumn(), console=err, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


@contextmanager
def download_bar(quiet: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A (file name, bytes so far, total bytes) callback drawing one rich bar per file."""
    if quiet:
        yield None
        return
    from rich.progress import DownloadColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description:>24}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(), console=err) as bar:
        tasks: dict[str, Any] = {}

        def update(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total or None)
            bar.update(tasks[name], completed=done, total=total or None)

        yield update


def _emit_json(obj: Any) -> None:
    out.print_json(json.dumps(obj, default=str), ensure_ascii=True)  # file names that are not UTF-8 stay valid JSON


def _print_version(value: bool) -> None:
    if value:
        out.print(f"transferlab {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (anywhere on the command line).")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version)] = False,
) -> None:
    _state["debug"] = debug


@app.command()
@config_options(LoadOptions, param="loading", panel="Data")
def check(
    data: DataArg,
    loading: LoadOptions = LoadOptions(),
    fix_list: Annotated[Optional[Path], typer.Option("--fix-list", help=FIX_LIST_HELP + "; here the unusable files (the data is never touched).")] = None,
    json_: JsonOpt = False,
) -> None:
    """Decode every file; print the layout, per-class counts per split, every skipped file and every warning.

    Exit code 0 when every file is usable and nothing needs a look, 1 otherwise.
    """
    ds = tl.check_dataset(data, **loading.kwargs())
    counts = ds.counts()
    if fix_list is not None:
        tl.write_fix_list(ds, fix_list)
    if json_:
        _emit_json({
            "root": str(ds.root), "layout": ds.layout, "label": ds.label, "counts": counts,
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in ds.skipped],
            "warnings": [{"path": str(w.path), "reason": w.reason} for w in ds.warnings],
        })
    else:
        splits = [s for s in ("train", "val", "test") if any(c.get(s) for c in counts.values())]
        out.print(f"[bold]{escape(display_path(ds.root))}[/]: layout [cyan]{ds.layout}[/], {len(ds.classes)} classes, {len(ds.samples)} images, split {'from the data' if ds.given_split else f'stratified (seed {loading.seed})'}")
        table = Table("class", *splits, "total")
        for name in ds.classes:
            table.add_row(escape(display_path(name)), *[str(counts[name].get(s, 0)) for s in splits], str(sum(counts[name].values())))
        table.add_row("[bold]all", *[str(sum(c.get(s, 0) for c in counts.values())) for s in splits], f"[bold]{len(ds.samples)}")
        out.print(table)
        _print_problems(out, [(x.path, x.reason) for x in ds.skipped], [(x.path, x.reason) for x in ds.warnings], limit=None)
        if fix_list is not None:
            out.print(f"wrote the {len(ds.skipped)} unusable file(s) to {escape(display_path(fix_list))}", highlight=False)
    raise typer.Exit(1 if ds.skipped or ds.warnings else 0)


Problems = list[tuple[Any, str]]  # (path, reason)


def _print_problems(console: Console, skipped: Problems, warnings: Problems, limit: int | None) -> None:
    """``N skipped file(s):`` then ``  path: reason`` lines, then the warnings (at most ``limit`` of each)."""
    for title, items in (("skipped file(s)", skipped), ("warning(s)", warnings)):
        if not items and title.startswith("warning"):
            continue
        console.print(f"{len(items)} {title}" + (":" if items else ""), highlight=False)
        for path, reason in items[:limit]:
            console.print(f"  {display_path(path)}: {reason}", markup=False, highlight=False)
        if limit is not None and len(items) > limit:
            console.print(f"  … and {len(items) - limit} more (the run's model.json lists them all)", highlight=False)


@app.command()
@renamed(Renamed("--fp32", to="tc_precision", value="fp32"))
@config_options(TrainConfig, param="config", prefix="tc_")
@config_options(FinetuneConfig, param="recipe", prefix="ft_", help_prefix="finetune: ", panel="Fine-tuning")
@config_options(LoadOptions, param="loading", panel="Data")
def train(
    data: Annotated[Optional[Path], typer.Argument(metavar="DATA", help=DATA_HELP)] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue the interrupted fine-tuning run in this folder (no DATA needed).")] = None,
    backbone: Annotated[Optional[str], typer.Option("--backbone", "-b", metavar="NAME", help=BACKBONE_HELP + (
        "; A+B concatenates their features (what `compare --combine` scores); auto: the bundled ones, alone or combined, chosen by "
        f"cross-validation on train + val [default: auto with --strategy auto, else {DEFAULT_BACKBONE}]."))] = None,
    weights: Annotated[Optional[list[str]], typer.Option("--weights", metavar="FILE|NAME=FILE", help=WEIGHTS_HELP + "; for A+B, NAME=FILE per member that uses a local file (repeatable).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run folder [default: runs/DATA-BACKBONE].")] = None,
    config: TrainConfig = TrainConfig(),
    budget: Annotated[Optional[str], typer.Option(help="auto/finetune: most training time, e.g. 90s, 5m, 1h [auto: 15m].")] = None,
    recipe: FinetuneConfig = FT,
    loading: LoadOptions = LoadOptions(),
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
    exclude: Annotated[Optional[Path], typer.Option("--exclude", help="Leave out the paths listed in FILE, one a line (e.g. a reviewed `audit --fix-list`).")] = None,
    decoder: DecoderOpt = "auto",
) -> None:
    """Train a classifier on DATA and write a run folder (model, metrics, plots)."""
    from .features.device_input import using_decoder

    if resume is not None:
        with using_decoder(decoder), progress_bar(quiet or json_) as cb:
            run = tl.resume(resume, cache_dir=cache_dir, progress=cb)
        return _report_training(run, resume, json_)
    if data is None:
        raise tl.DataError("expected DATA (a dataset folder) or --resume RUN — see `transferlab train --help`")
    config = config.replace(  # the flags the config's own fields do not make; refused here, before the data is read, when wrong
        backbone=backbone, weights=_weights_arg(weights), budget=budget, seed=loading.seed, finetune=recipe, exclude=tuple(_read_list(exclude)))
    ds = tl.load_dataset(data, **loading.kwargs())
    directory = out_dir or tl.default_run_dir(ds, backbone or ("auto" if config.strategy == "auto" else DEFAULT_BACKBONE))
    with using_decoder(decoder), progress_bar(quiet or json_) as cb:
        run = tl.train(ds, config, out=directory, cache_dir=cache_dir, progress=cb)
    _report_training(run, directory, json_)


def _report_training(run: tl.Run, directory: Path, json_: bool) -> None:
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 reports
    record = run.record
    skipped, warnings = record.data.problems() if record.data else ([], [])
    if json_:
        _emit_json({"run": str(directory), "strategy": record.strategy, "kept": record.kept, "decision": record.decision, "metrics": record.metrics or {}, "timing": record.timing.to_dict(),
                    "skipped": [{"path": p, "reason": r} for p, r in skipped], "warnings": [{"path": p, "reason": r} for p, r in warnings]})
        return
    if skipped or warnings:
        _print_problems(err, skipped, warnings, limit=20)
    if record.finetune and record.finetune.interrupted:
        err.print(f"interrupted: continue with `transferlab train --resume {directory}`")
    out.print(run, highlight=False)



def _read_list(path: Path | None) -> list[Path]:
    if path is None:
        return []
    if not path.is_file():
        raise tl.InputError(f"expected a file listing paths, one a line, got {path} (not a file) — write one with `transferlab audit DATA --fix-list FILE`")
    from .audit import read_paths

    return read_paths(path)


@app.command("lr-find")
@config_options(LoadOptions, param="loading", panel="Data")
def lr_find(
    data: DataArg,
    backbone: BackboneOpt = DEFAULT_BACKBONE,
    weights: WeightsOpt = None,
    out_png: Annotated[Path, typer.Option("--out", "-o", help="Where to save the plot.")] = Path("lr_find.png"),
    unfreeze: Annotated[str, typer.Option(help="finetune: " + field_help(FinetuneConfig, "unfreeze"))] = FT.unfreeze,
    steps: Annotated[int, typer.Option(help="Optimiser steps in the test.")] = 60,
    loading: LoadOptions = LoadOptions(),
    cache_dir: CacheOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Learning-rate range test for fine-tuning: a loss-vs-learning-rate plot and a suggested --lr."""
    ds = tl.load_dataset(data, **loading.kwargs())
    with progress_bar(json_) as cb:
        result = tl.find_lr(ds, backbone, weights=weights, cache_dir=cache_dir, seed=loading.seed, steps=steps, finetune_config=tl.FinetuneConfig(unfreeze=unfreeze), progress=cb)
    from .evaluate import save_figure
    from .train.lr_find import plot_lr_find

    save_figure(plot_lr_find(result), out_png)
    if json_:
        _emit_json({"suggested_lr": result.suggestion, "plot": str(out_png), "lrs": result.lrs, "losses": result.losses})
    else:
        out.print(f"suggested learning rate [bold]{result.suggestion:.1e}[/] (use --lr); plot: {out_png}")


TtaOpt = Annotated[bool, typer.Option("--tta", help=(
    "Test-time augmentation: average each photo's features over the plain view, its mirror image and two shifted crops "
    "(4 times the feature cost for photos not cached yet; measured in BENCHMARKS.md)."))]


def _tta_line(run: tl.Run) -> str:
    """What ``--tta`` averaged, for the user (stderr) and for metrics.json."""
    from .features.views import view_names

    return "test-time augmentation: features averaged over the plain view and " + ", ".join(view_names(run.tta))


@app.command()
@config_options(LoadOptions, param="loading", panel="Data")
def evaluate(
    run_dir: RunArg,
    data: DataArg,
    split: SplitOpt = "auto",
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where to write metrics and plots [default: RUN/eval-DATA(-SPLIT)].")] = None,
    loading: LoadOptions = LoadOptions(),
    cache_dir: CacheOpt = None,
    precision: PrecisionOpt = "auto",
    ood: Annotated[Optional[Path], typer.Option(help="Images of none of RUN's classes (a folder): how well 'none of these' rejects them (AUROC, FPR95, histogram).")] = None,
    tta: TtaOpt = False,
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
    decoder: DecoderOpt = "auto",
) -> None:
    """Accuracy, per-class metrics, calibration, confusion matrix and top losses of RUN on DATA (--ood: rejection)."""
    from .features.device_input import using_decoder

    run = tl.load(run_dir).with_tta(tta)
    ds = tl.load_dataset(data, **loading.kwargs())
    others = expand_image_paths([ood]) if ood is not None else None
    with using_decoder(decoder), progress_bar(quiet or json_) as cb:
        result = run.evaluate(ds, split, cache_dir=cache_dir, precision=precision, progress=cb, out=out_dir or run_dir / ("eval-" + ds.root.name + ("" if split == "auto" else f"-{split}")), ood=others)
    if tta:
        err.print(_tta_line(run), highlight=False)
    if json_:
        return _emit_json({**result.metrics, "files": {k: str(v) for k, v in result.files.items()}})
    out.print(result)


RAY = "Ray cluster"
RAY_HELP = "Run on a Ray cluster"
RayOpt = Annotated[bool, typer.Option("--ray", help=RAY_HELP + "; Ray Data decodes in tasks, the model runs in a pool of --workers replicas.", rich_help_panel=RAY)]
AddressOpt = Annotated[Optional[str], typer.Option(help="--ray: the cluster (auto, or HOST:6379) [default: a local Ray instance].", rich_help_panel=RAY)]
WorkersOpt = Annotated[int, typer.Option(help="Model replicas; with --ray, one Ray actor each.", rich_help_panel=RAY)]
GpusOpt = Annotated[float, typer.Option("--gpus-per-worker", help="--ray: GPUs each replica reserves (0: CPU).", rich_help_panel=RAY)]


def _ray_config(address: Optional[str], workers: int, gpus: float, precision: str) -> Any:
    from .cluster import RayConfig

    return RayConfig(address=address, workers=workers, gpus_per_worker=gpus, precision=precision)


@app.command()
@config_options(LoadOptions, param="loading", panel="Data")
def calibrate(
    run_dir: RunArg,
    data: Annotated[Path, typer.Argument(metavar="DATA", help="The run's training data, split as it was trained (its test split is never used).")],
    accept: AcceptOpt = DEFAULT_ACCEPT,
    ood_score: OodScoreOpt = DEFAULT_METHOD,
    loading: LoadOptions = LoadOptions(),
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Fit RUN's softmax temperature and 'none of these' threshold on DATA's validation images, and save them in RUN."""
    run = tl.load(run_dir)
    ds = tl.load_dataset(data, **loading.kwargs())
    with progress_bar(quiet) as cb:
        calibrated = tl.calibrate(run, ds, accept=accept, ood_score=ood_score, cache_dir=cache_dir, progress=cb)
    calibrated.save(run_dir)
    out.print(calibrated.confidence.describe(len(run.classes)) + f"; saved in {display_path(run_dir)}", highlight=False)


@app.command()
def predict(
    model: ModelArg,
    paths: Annotated[list[str], typer.Argument(metavar="IMAGE", help="Images or folders of images (with --ray also s3://, gs://... URIs).")],
    k: Annotated[int, typer.Option("-k", "--top", help="How many labels per image.")] = 5,
    weights: WeightsOpt = None,
    cache_dir: CacheOpt = None,
    precision: PrecisionOpt = "auto",
    json_: JsonOpt = False,
    csv_: Annotated[bool, typer.Option("--csv", help="CSV: path,rank,label,prob.")] = False,
    quiet: QuietOpt = False,
    runtime: Annotated[choice(("torch", "onnx")), typer.Option(help="onnx: the run's model.onnx from `transferlab export`, or an .onnx file, on onnxruntime.")] = "torch",
    ray: RayOpt = False,
    out_file: Annotated[Optional[Path], typer.Option("--out", "-o", help=(
        "--ray: the folder to write, a Parquet dataset: one part per --part-size files, written by the workers, and _manifest.json; the same command again "
        "resumes a job that died. On a cluster the feature cache is used only with a --cache-dir every node reaches."), rich_help_panel=RAY)] = None,
    part_size: Annotated[int, typer.Option("--part-size", help="--ray: files per part (a rerun resumes only with the same value).", rich_help_panel=RAY)] = 256,
    address: AddressOpt = None,
    workers: WorkersOpt = 1,
    gpus_per_worker: GpusOpt = 0.0,
    decoder: DecoderOpt = "auto",
    tta: TtaOpt = False,
) -> None:
    """Top-k labels with probabilities for each image (--ray: for a bucket of them, into a table)."""
    from .features.device_input import using_decoder

    if tta and (ray or runtime == "onnx"):
        raise tl.ConfigError("expected --tta without --ray and --runtime onnx: test-time augmentation runs on the torch runtime here")
    if ray and decoder == "gpu":
        raise tl.ConfigError("expected --decoder auto or cpu with --ray, got gpu: Ray Data decodes the files in CPU tasks")
    if ray or out_file is not None:
        if not (ray and out_file is not None and runtime == "torch"):
            raise tl.ConfigError("--ray and --out go together (with the torch runtime): `predict RUN DIR --ray --out predictions.parquet`")
        config = _ray_config(address, workers, gpus_per_worker, precision)
        _predict_ray(tl.open_model(model, weights), paths, out_file, k, config, {"cache_dir": cache_dir, "part_size": part_size}, quiet or json_, json_)
    files = expand_image_paths(paths)
    if runtime == "onnx":
        results = _predict_onnx(model, files, k)
    else:
        run = tl.open_model(model, weights).with_tta(tta)
        with using_decoder(decoder), progress_bar(quiet or json_ or csv_ or len(files) < 64) as cb:
            results = run.predict(files, k, cache_dir=cache_dir, precision=precision, progress=cb)
        if tta:
            err.print(_tta_line(run), highlight=False)
        if not run.confidence.rejects and run.record.strategy != "pretrained":
            err.print("note: this run has no 'none of these' threshold (made before transferlab had one): nothing is rejected — add one with `transferlab calibrate RUN DATA`", highlight=False)
    _print_predictions(results, json_, csv_)
    if any("error" in r for r in results):
        raise typer.Exit(1)


def _predict_ray(run: tl.Run, paths: list[str], out_file: Path, k: int, config: Any, options: dict[str, Any], quiet: bool, json_: bool) -> None:
    """``predict --ray``: the Parquet folder written by a Ray job; exits 1 when a file could not be read."""
    from .cluster import ray_predict

    with progress_bar(quiet) as cb:
        done = ray_predict(run, paths, out_file, k, config=config, progress=cb, **options)
    if json_:
        _emit_json({"out": str(done.path), "rows": done.rows, "failed": len(done.failed), "seconds": round(done.seconds, 2), "workers": done.workers,
                    "parts": done.parts, "parts_kept": done.parts_skipped, "computed": done.computed, "cached": done.cached})
    else:
        kept = f", {done.parts_skipped} kept from an earlier run" if done.parts_skipped else ""
        out.print(f"wrote [bold]{escape(str(done.path))}[/]: {done.rows} rows in {done.parts} part(s){kept}, {len(done.failed)} unreadable (reasons in the error column); "
                  f"{done.computed} images computed, {done.cached} from the feature cache, in {done.seconds:.1f} s on {done.workers} worker(s)", highlight=False)
    raise typer.Exit(1 if done.failed else 0)


def _predict_onnx(model: str, files: list[Path], k: int) -> list[Any]:
    from .tasks.export import OnnxModel

    exported = OnnxModel(model)
    results = exported.predict(files, k)
    if not exported.confidence.rejects:
        err.print("note: this ONNX file has no 'none of these' threshold (its run had none, or it was exported before transferlab exported one): every image gets a label", highlight=False)
    return results


def _print_predictions(results: list[Any], json_: bool, csv_: bool) -> None:
    """One line per photo (top labels, "none of these", "not sure"), or JSON, or CSV rows."""
    if json_:
        _emit_json([r.to_dict() for r in results])
    elif csv_:
        print("path,rank,label,prob")
        for r in results:
            for rank, t in enumerate(r.get("top", []), 1):
                print(f"{json.dumps(r['path'])},{rank},{json.dumps(t['label'])},{t['prob']:.6f}")
    else:
        width = max(len(r["path"]) for r in results)
        for r in results:
            top = "   ".join(f"[bold]{escape(t['label'])}[/] {t['prob']:.3f}" for t in r["top"]) if "top" in r else f"[red]{r['error']}[/]"
            if r.get("in_distribution") is False:
                top = f"[yellow]none of these[/] (closest: {escape(r['closest'])} {r['prob']:.2f})"
            elif r.get("unsure"):
                top += "   [yellow](not sure)[/]"
            out.print(f"{escape(r['path']):<{width}}   {top}", highlight=False)


@app.command()
def backbones(pattern: Annotated[str, typer.Argument(metavar="PATTERN", help="Filter, e.g. 'resnet*'.")] = "") -> None:
    """List backbones: the bundled (offline) ones, then timm architectures matching PATTERN."""
    import fnmatch

    from .models import BUNDLED

    for name in sorted(BUNDLED):
        if not pattern or fnmatch.fnmatch(name, pattern):
            out.print(f"{name}  [green](bundled weights, offline)[/]")
    others = [n for n in tl.list_backbones() if n not in BUNDLED and (not pattern or fnmatch.fnmatch(n, pattern))]
    if pattern:
        for name in others:
            out.print(f"{name}  (hub weights or --weights FILE)")
    else:
        out.print(f"… and {len(others)} timm architectures (hub weights when online, or --weights FILE); filter with a pattern, e.g. `transferlab backbones 'resnet*'`")


@app.command()
@renamed(Renamed("--backbones", to="backbones_"))
@config_options(LoadOptions, param="loading", panel="Data")
def compare(
    data: DataArg,
    backbones_: Annotated[Optional[list[str]], typer.Option("--backbone", "-b", metavar="NAME", help=BACKBONE_HELP + "; repeat for each backbone to compare [default: the bundled ones, offline].")] = None,
    weights: Annotated[Optional[list[str]], typer.Option("--weights", metavar="NAME=FILE", help=WEIGHTS_HELP + "; NAME=FILE for backbone NAME (repeatable; NAME joins the list).")] = None,
    features: FeaturesOpt = DEFAULT_FEATURES,
    combine: Annotated[bool, typer.Option("--combine", help="Also score the concatenated features of the best two and three.")] = False,
    folds: Annotated[int, typer.Option(help="k of the k-fold cross-validation.")] = 5,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for compare.json, compare.csv and compare.png.")] = None,
    loading: LoadOptions = LoadOptions(),
    cache_dir: CacheOpt = None,
    precision: PrecisionOpt = "auto",
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Which backbone? k-fold probe accuracy of each on DATA's train + val images (never test), speed and size, and a recommendation."""
    from .models.bundled import BUNDLED

    local = dict(_name_equals_file(w) for w in weights or [])
    names = _names(backbones_) or sorted(BUNDLED)
    ds = tl.load_dataset(data, **loading.kwargs())
    with progress_bar(quiet or json_) as cb:
        result = tl.compare(ds, names, weights=local, features=features, folds=folds, combine=combine, seed=loading.seed, cache_dir=cache_dir,
                            precision=precision, out=out_dir, progress=cb)
    if json_:
        return _emit_json({**result.to_dict(), "files": {k: str(v) for k, v in result.files.items()}})
    out.print(result, highlight=False)


def _names(values: list[str] | None) -> list[str]:
    """A repeatable flag's names, each of which may also be a comma-separated list (``--backbones A,B``)."""
    return [n.strip() for value in values or [] for n in value.split(",") if n.strip()]


def _weights_arg(values: list[str] | None) -> Path | dict[str, Path] | None:
    """``--weights FILE`` (one backbone) or ``--weights NAME=FILE ...`` (members of A+B)."""
    if not values:
        return None
    if len(values) == 1 and ("=" not in values[0] or Path(values[0]).is_file()):
        return Path(values[0])
    return dict(_name_equals_file(v) for v in values)


def _name_equals_file(text: str) -> tuple[str, Path]:
    name, sep, file = text.partition("=")
    if not sep or not name.strip() or not file.strip():
        raise tl.ConfigError(f"expected --weights NAME=FILE (e.g. resnet18=./resnet18.safetensors), got {text!r}")
    return name.strip(), Path(file.strip())


@datasets_app.command("get")
def datasets_get(
    name: Annotated[choice(("oxford-iiit-pet", "petimages")), typer.Argument(metavar="NAME", help="The dataset.")],
    dest: Annotated[Path, typer.Option(help="Parent folder.")] = Path("data"),
    quiet: QuietOpt = False,
) -> None:
    """Download, verify and extract a dataset (official URLs and checksums; an interrupted download resumes)."""
    from .data.download import get_dataset

    started = time.perf_counter()
    with download_bar(quiet) as cb:
        path = get_dataset(name, dest, progress=cb)
    out.print(f"{name} ready in [bold]{path}[/] ({time.perf_counter() - started:.0f} s)")

DREAM = DreamConfig()
ClassHelp = "Class name (exact or fuzzy, e.g. 'siamese') or index"
LayerHelp = "Layer name (`transferlab features MODEL --list-layers` lists them)"


@app.command()
@renamed(Renamed("--top", to="top"))
def features(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A run folder, or a backbone name (its ImageNet classes); with --ray, the DATA folder.")],
    image: Annotated[Optional[Path], typer.Argument(metavar="IMAGE", help="The photo to look at.")] = None,
    layer: Annotated[Optional[str], typer.Option(help=LayerHelp + "; or --stage.")] = None,
    stage: Annotated[Optional[int], typer.Option(help="K-th feature level instead (1 = finest) [default: the middle one].")] = None,
    top: Annotated[int, typer.Option("--channels", help="How many of the most active channels to show.")] = 16,
    out_png: Annotated[Optional[Path], typer.Option("--out", "-o", help="PNG to write [default: IMAGE-stem_features_LAYER.png].")] = None,
    list_layers: Annotated[bool, typer.Option("--list-layers", help="Print the layer names with output shapes and stop.")] = False,
    weights: WeightsOpt = None,
    ray: Annotated[bool, typer.Option("--ray", help=RAY_HELP + "; `features DATA --ray` fills the feature cache with DATA's images, for a later train.", rich_help_panel=RAY)] = False,
    backbone: Annotated[str, typer.Option("--backbone", "-b", metavar="NAME", help=BACKBONE_HELP + "; --ray: whose features are cached, as the later train will use (A+B: several).", rich_help_panel=RAY)] = DEFAULT_BACKBONE,
    feature_mode: Annotated[field_choices(TrainConfig, "features"), typer.Option("--features", help=_and(field_help(TrainConfig, "features"), "--ray: as the later train will use."), rich_help_panel=RAY)] = DEFAULT_FEATURES,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Feature cache folder; --ray: one every worker reaches [default: $TRANSFERLAB_CACHE or ~/.cache/transferlab].", rich_help_panel=RAY)] = None,
    precision: Annotated[field_choices(TrainConfig, "precision"), typer.Option(help=_and(field_help(TrainConfig, "precision"), "--ray: as the later train will use."), rich_help_panel=RAY)] = "auto",
    address: AddressOpt = None,
    workers: WorkersOpt = 1,
    gpus_per_worker: GpusOpt = 0.0,
    quiet: QuietOpt = False,
) -> None:
    """Feature maps: the most active channels of one layer for IMAGE, in a PNG grid (--ray: fill the feature cache for DATA)."""
    if ray:
        from .cluster import ray_extract

        bb = tl.create_backbone(backbone, weights, feature_mode)
        with progress_bar(quiet) as cb:
            done = ray_extract(bb.model, [s.path for s in tl.load_dataset(Path(model)).samples], cache_dir=cache_dir, config=_ray_config(address, workers, gpus_per_worker, precision), progress=cb)
        out.print(f"{done.computed} computed, {done.cached} already cached, {len(done.failed)} unreadable, in {done.seconds:.1f} s; cache: [bold]{escape(str(done.cache_dir))}[/]", highlight=False)
        raise typer.Exit(1 if done.failed else 0)
    run = tl.open_model(model, weights)
    if list_layers:
        table = Table("layer", "type", "output (C, H, W)", "--stage")
        for info in tl.list_layers(run.model):
            table.add_row(info.name, info.kind, " x ".join(map(str, info.shape[1:])), str(info.stage or ""))
        out.print(table)
        return
    if image is None:
        raise tl.ConfigError("expected IMAGE (a photo) or --list-layers — see `transferlab features --help`")
    maps = tl.feature_maps(run.model, run.load_image(image), layer=layer, stage=stage)
    path = out_png or Path(f"{image.stem}_features_{maps.layer}.png")
    tl.inspect.feature_grid(maps, top).save(path)
    c, h, w = maps.activation.shape[1:]
    out.print(f"{maps.layer}: {c} channels of {h}x{w}; most active {maps.top(min(top, 5))}; wrote [bold]{path}[/]")


@app.command()
@config_options(DreamConfig, param="config", panel="Recipe")
def dream(
    model: ModelArg,
    class_: Annotated[str, typer.Option("--class", "-c", help=ClassHelp + ".")],
    out_png: Annotated[Optional[Path], typer.Option("--out", "-o", help="PNG to write (+ .json beside it) [default: dream_CLASS.png].")] = None,
    config: DreamConfig = DREAM,
    from_: Annotated[Optional[Path], typer.Option("--from", help="Start from this photo instead of noise.")] = None,
    weights: WeightsOpt = None,
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Ideal class image: optimise an image from noise (or --from a photo) until MODEL is sure of --class."""
    config.check()  # before loading the model
    run = tl.open_model(model, weights)
    init = run.load_image(from_) if from_ is not None else None
    with progress_bar(quiet or json_) as cb:
        result = tl.dream(run.model, class_, config, init=init, progress=(lambda d, t: cb("dream", d, t)) if cb else None)
    path = out_png or Path(f"dream_{re.sub(r'[^A-Za-z0-9_.-]+', '_', result.class_name)}.png")
    files = result.save(path)
    if json_:
        _emit_json({**result.summary(), "files": {k: str(v) for k, v in files.items()}})
        return
    out.print(result)
    out.print(f"wrote {', '.join(str(p) for p in files.values())}")


@app.command()
@renamed(Renamed("--split", to="split"))
def explain(
    model: ModelArg,
    image: Annotated[Optional[Path], typer.Argument(metavar="IMAGE", help="The photo to explain.")] = None,
    class_: Annotated[Optional[str], typer.Option("--class", "-c", help=ClassHelp + " [default: the predicted one].")] = None,
    layer: Annotated[Optional[str], typer.Option(help=LayerHelp + " [default: the last spatial one].")] = None,
    out_png: Annotated[Optional[Path], typer.Option("--out", "-o", help="PNG to write [default: IMAGE-stem_gradcam.png].")] = None,
    score: Annotated[Optional[Path], typer.Option(help="Score Grad-CAM on this Oxford-IIIT Pet folder instead: peak on the pet / on the head.")] = None,
    split: Annotated[choice(("test", "trainval", "all")), typer.Option("--score-split", help="--score: which of Oxford's own image lists (head boxes: trainval only).")] = "test",
    limit: Annotated[Optional[int], typer.Option(help=LIMIT_HELP + "; --score: of the list [default: all of them].")] = None,
    weights: WeightsOpt = None,
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Grad-CAM heat map of the predicted (or --class) class over IMAGE; or --score DATA for the pointing game."""
    run = tl.open_model(model, weights)
    if score is not None:
        with progress_bar(quiet or json_) as cb:
            result = tl.score_explanations(run, score, split, layer=layer, limit=limit, progress=cb)
        if json_:
            _emit_json({**result.summary(), "images": result.images})
            return
        pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
        out.print(f"Grad-CAM ({result.layer}) peak on the pet: [bold]{pct(result.in_pet)}[/] of {result.n} images ({pct(result.in_pet_or_border)} counting the border); centre baseline {pct(result.centre_in_pet)}")
        out.print(f"Grad-CAM peak in the head box: [bold]{pct(result.in_head)}[/] of {result.n_head} images with a box; centre baseline {pct(result.centre_in_head)}")
        if not result.n_head:
            err.print(f"the {split} list has no head boxes (annotations/xmls/) — try --score-split trainval")
        return
    if image is None:
        raise tl.ConfigError("expected IMAGE (a photo) or --score DATA — see `transferlab explain --help`")
    cam = tl.explain(run, image, class_, layer)
    path = out_png or Path(f"{image.stem}_gradcam.png")
    cam.sheet().save(path)
    row, col = cam.peak()
    if json_:
        _emit_json({"class": cam.class_name, "prob": cam.probability, "layer": cam.layer, "peak_row_col": [row, col], "file": str(path)})
    else:
        out.print(f"{cam.class_name} (p={cam.probability:.3f}): Grad-CAM at {cam.layer} peaks at row {row}, column {col} of the model's view; wrote [bold]{path}[/]")


@dataclass(frozen=True)
class AttackFlags:
    """The attack flags shared by ``attack`` and ``robustness`` (budgets as typed: "4/255"); ``config`` makes
    the library's ``AttackConfig``, whose defaults these match (tests/test_cli_options.py)."""

    method: str = option("pgd", "The update rule (pgd: bim from a random start).", choices=("fgsm", "bim", "pgd"))
    norm: str = option("Linf", "The budget's distance.", choices=("Linf", "L2"))
    steps: int = option(20, "Most gradient steps (fgsm: 1).")
    alpha: str | None = option(None, "Step size, e.g. 1/255 [default: eps/4].")
    random_start: bool = option(True, "pgd: start from a random point of the ball.", flag="--random-start/--no-random-start")
    confidence: float = option(0.0, "Stop once the attack wins by this logit margin.")
    precision: str = option("auto", "Gradient precision (auto: bf16 where the hardware has it, else fp32; the checks are fp32).", choices=("auto", "bf16", "fp32"))
    threads: int = option(1, "CPU threads per gradient (0: torch's default). 1 was 6x faster than 2 on a busy 2-core CPU (BENCHMARKS.md).")

    def config(self, eps: str, seed: int) -> tl.AttackConfig:
        """The ``AttackConfig`` for budget ``eps`` (as typed); building it changes nothing else (``threads``
        applies while the command runs: ``intra_op_threads``)."""
        from .attacks import parse_eps

        norm = {"linf": "Linf", "l2": "L2"}.get(self.norm.lower(), self.norm)
        limit = 1.0 if norm == "Linf" else float("inf")  # an L2 budget sums over all pixels: it may exceed 1
        return tl.AttackConfig(method=self.method.lower(), norm=norm, eps=parse_eps(eps, limit), steps=self.steps, alpha=None if self.alpha is None else parse_eps(self.alpha, limit),
                               random_start=self.random_start, confidence=self.confidence, precision=self.precision, seed=seed)


@app.command()
@renamed(Renamed("--label", to="label"))
@config_options(AttackFlags, param="flags", panel="Attack")
def attack(
    model: ModelArg,
    image: Annotated[Path, typer.Argument(metavar="IMAGE", help="The photo to attack.")],
    target: Annotated[Optional[str], typer.Option(help="Class to turn the image into (name, fuzzy, or index); without it: untargeted.")] = None,
    label: Annotated[Optional[str], typer.Option("--true-class", help="Untargeted: the true class to move away from [default: the model's prediction].")] = None,
    out_png: Annotated[Optional[Path], typer.Option("--out", "-o", help="Adversarial PNG; the figure and JSON go next to it [default: IMAGE_adv.png].")] = None,
    transfer_to: Annotated[Optional[list[str]], typer.Option("--transfer-to", metavar="MODEL", help="A backbone or run to show the adversarial image to (repeatable).")] = None,
    eps: Annotated[str, typer.Option(help="Budget in [0, 1] pixels; e.g. 4/255.", rich_help_panel="Attack")] = "4/255",
    flags: AttackFlags = AttackFlags(),
    seed: Annotated[int, typer.Option(help="Seed of the random start (pgd).", rich_help_panel="Attack")] = 0,
    weights: WeightsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Nudge IMAGE within an ε budget until MODEL calls it --target (or anything else): PNG, figure, JSON."""
    from .features.runtime import intra_op_threads

    config = flags.config(eps, seed)
    others = _names(transfer_to)
    png = out_png or Path(f"{image.stem}_adv.png")
    with intra_op_threads(flags.threads):  # only while attacking: the command may run in-process (tests, notebooks)
        report = tl.attack(model, image, target, label=label, config=config, out=png, transfer_to=others, weights=weights)
    if json_:
        return _emit_json(report.record)
    out.print(report)


@app.command()
@renamed(Renamed("--limit", to="limit"))
@config_options(LoadOptions, param="loading", panel="Data")
@config_options(AttackFlags, param="flags", panel="Attack")
def robustness(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A run folder (or a backbone whose classes the data uses).")],
    data: DataArg,
    eps: Annotated[str, typer.Option(help="Budget in [0, 1] pixels; comma-separated, one point of the curve each.", rich_help_panel="Attack")] = "0,1/255,2/255,4/255,8/255",
    targeted: Annotated[bool, typer.Option("--targeted", help="Also the source → target success matrix with median minimal ε.")] = False,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the CSVs and figures.")] = Path("robustness"),
    split: SplitOpt = "auto",
    limit: Annotated[Optional[int], typer.Option("--per-class", help="At most N images of each class [default: all of them].")] = None,
    flags: AttackFlags = AttackFlags(),
    batch_size: Annotated[int, typer.Option(help=field_help(TrainConfig, "batch_size").split(" [")[0] + ".")] = 8,
    loading: LoadOptions = LoadOptions(),
    weights: WeightsOpt = None,
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Accuracy under attack at each --eps (CSV + curve), and with --targeted which class turns into which."""
    from .attacks import parse_eps_list
    from .features.runtime import intra_op_threads

    config = flags.config("0", loading.seed)
    budgets = parse_eps_list(eps, 1.0 if config.norm == "Linf" else float("inf"))
    ds = tl.load_dataset(data, **loading.kwargs())
    with progress_bar(quiet or json_) as cb, intra_op_threads(flags.threads):
        result = tl.robustness(model, ds, budgets, config, targeted=targeted, split=None if split == "auto" else split, limit=limit, seed=loading.seed, out=out_dir, batch_size=batch_size, weights=weights, progress=cb)
    if json_:
        return _emit_json({"curve": result.curve, "matrix": result.matrix.rows() if result.matrix else None, "files": {k: str(v) for k, v in result.files.items()}})
    out.print(result)


@app.command("audit")
@renamed(Renamed("--limit", to="rows"))
@config_options(LoadOptions, param="loading", panel="Data")
def audit_(
    data: DataArg,
    backbone: Annotated[str, typer.Option("--backbone", "-b", metavar="NAME", help=BACKBONE_HELP + "; its (cached) features are compared.")] = DEFAULT_BACKBONE,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for audit.json, audit.csv, audit.html [default: audit-DATA].")] = None,
    fix_list: Annotated[Optional[Path], typer.Option("--fix-list", help=FIX_LIST_HELP + "; here the findings to review (for `train --exclude` once reviewed).")] = None,
    rows: Annotated[int, typer.Option(help="Rows per kind of finding in the terminal table.")] = 10,
    weights: WeightsOpt = None,
    loading: LoadOptions = LoadOptions(),
    cache_dir: CacheOpt = None,
    precision: PrecisionOpt = "auto",
    quiet: QuietOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Find duplicates (within and across splits), likely label errors, outliers; the data is never changed.

    Exit code 0 when nothing is found above the thresholds, 1 otherwise.
    """
    from .audit import write_paths

    ds = tl.load_dataset(data, **loading.kwargs())
    with progress_bar(quiet or json_) as cb:
        result = tl.audit(ds, backbone, weights=weights, out=out_dir or Path(f"audit-{ds.root.name}"), cache_dir=cache_dir, precision=precision, seed=loading.seed, progress=cb)
    if fix_list is not None:
        write_paths(result.fix_paths(), fix_list)
    if json_:
        _emit_json({**result.summary(), "files": {k: str(v) for k, v in result.files.items()}, "findings": [vars(f) for f in result.findings]})
    else:
        out.print(result.table(rows), highlight=False)
        if fix_list:
            out.print(f"paths to review in {escape(str(fix_list))}", highlight=False)
    raise typer.Exit(0 if result.clean else 1)


@app.command("export")
def export_(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A run folder (or a backbone name, with --out).")],
    format_: Annotated[choice(("onnx", "torchscript")), typer.Option("--format", "-f", help="What to export to.")] = "onnx",
    out_file: Annotated[Optional[Path], typer.Option("--out", "-o", help="File to write [default: RUN/model.onnx or RUN/model.torchscript.pt].")] = None,
    images: Annotated[Optional[list[Path]], typer.Option("--images", metavar="PATH", help="Images for the parity check when the run's data is gone (repeatable; folders allowed).")] = None,
    limit: Annotated[Optional[int], typer.Option(help=LIMIT_HELP + "; for the parity check [default: the whole evaluation split].")] = None,
    tolerance: Annotated[float, typer.Option(help="Max |logit difference| accepted by the parity check.")] = 1e-3,
    no_check: Annotated[bool, typer.Option("--no-check", help="Skip the parity check.")] = False,
    weights: WeightsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Export a run for deployment and check the copy gives the same answers as PyTorch (exit 1 if not)."""
    from .tasks.export import export

    run = tl.open_model(model, weights)
    result = export(run, format_, out_file, check=not no_check, images=expand_image_paths(images) if images else None, limit=limit, tolerance=tolerance)
    parity = result.parity
    if json_:
        _emit_json({"path": str(result.path), "format": result.format, "seconds": round(result.seconds, 3), "parity": parity.summary() if parity else None})
    else:
        out.print(result, highlight=False)
    if parity and not parity.ok:
        raise typer.Exit(1)


@app.command()
def serve(
    model: ModelArg,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for the local network).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free one, printed at start).")] = 8000,
    max_mb: Annotated[float, typer.Option(help="Largest accepted upload, in MB.")] = 20.0,
    max_files: Annotated[int, typer.Option(help="Photos per request.")] = 16,
    workers: Annotated[int, typer.Option(help="Model replicas; requests inferred at the same time (the rest wait).")] = 1,
    threshold: Annotated[Optional[float], typer.Option(help="'Not sure' below this top probability [default: the run's, else 0.5].")] = None,
    save_threshold: Annotated[bool, typer.Option("--save-threshold", help="Store --threshold in the run folder (predict uses it too), then serve.")] = False,
    batch_window_ms: Annotated[float, typer.Option(min=0, help="How long a request waits for others to share its forward pass, in ms.")] = 5.0,
    max_batch: Annotated[int, typer.Option(min=1, help="Photos per forward pass.")] = 16,
    max_queue: Annotated[int, typer.Option(min=1, help="Photos waiting for a pass beyond which requests get 503 + Retry-After.")] = 64,
    precision: PrecisionOpt = "auto",
    weights: WeightsOpt = None,
) -> None:
    """Serve the pet-nursery web page and JSON API (POST /predict, GET /model, /health, /docs) for a run."""
    from .serve import ServeConfig, serve as serve_run, set_threshold

    if save_threshold:
        if threshold is None or not Path(model).is_dir():
            raise tl.ConfigError("--save-threshold needs --threshold and a run folder")
        set_threshold(model, threshold)
    run = tl.open_model(model, weights)
    config = ServeConfig(max_bytes=int(max_mb * 1e6), max_files=max_files, workers=workers, threshold=threshold, precision=precision,
                         batch_window_ms=batch_window_ms, max_batch=max_batch, max_queue=max_queue)
    where = f"http://{host}:{port}" if port else f"{host}, on a free port (uvicorn's next line says which)"
    err.print(f"serving {len(run.classes)} classes on {where}  (API docs: /docs)")
    serve_run(run, host, port, config)


@app.command("report")
def report_(
    model: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder written by `transferlab train`.")],
    out_file: Annotated[Optional[Path], typer.Option("--out", "-o", help="HTML file [default: RUN/report.html].")] = None,
    examples: Annotated[int, typer.Option(help="Correct examples shown per class.")] = 3,
    gradcam_samples: Annotated[int, typer.Option("--gradcam", help="Photos explained with Grad-CAM (plus the two worst mistakes).")] = 6,
    dream_steps: Annotated[int, typer.Option("--dream-steps", help="Also each class's ideal image (dream), with this many steps (0: none); takes minutes.")] = 0,
    quiet: QuietOpt = False,
) -> None:
    """One self-contained report.html (images embedded): data, curves, metrics, confusion, top losses, examples, Grad-CAM."""
    from .tasks.report import report

    run = tl.open_model(model)
    with progress_bar(quiet) as cb:
        path = report(run, out_file, examples_per_class=examples, gradcam_samples=gradcam_samples, dream_steps=dream_steps, progress=cb)
    out.print(f"wrote [bold]{path}[/] ({path.stat().st_size / 1e6:.1f} MB, no network needed to view it)")


def main() -> None:
    """Entry point: user errors print one line (``--debug`` for the traceback) and exit 1."""
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit comes back as its code here
        sys.exit(code if isinstance(code, int) else 0)
    except TransferlabError as e:
        if _state["debug"]:
            raise
        err.print(f"[red]error:[/] {e}", highlight=False)
        sys.exit(1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("[red]aborted[/]")
        sys.exit(130)
    except Exception as e:
        if _state["debug"]:
            raise
        if any(cls.__name__ == "ClickException" for cls in type(e).__mro__):  # typer's own copy of click, or click
            e.show()  # usage errors: the usage line and the reason, as click prints them; exit code 2
            sys.exit(e.exit_code)
        err.print(f"[red]error:[/] unexpected {type(e).__name__}: {e} — rerun with --debug for the traceback, and please report it", highlight=False)
        sys.exit(1)
