"""One grammar for every command: the same flag means the same thing everywhere, choices are refused before
anything heavy loads, help shows no ``<bool>`` or leaked Python types, arguments are named alike, and
``--version`` / ``--debug`` work where a user types them. Walks typer's click tree, so a new command is checked
the day it is added."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from transferlab import __version__
from transferlab.cli import app

from .conftest import make_photo
from .test_cli import cli


def _walk(group: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    found = [(path, group)]
    for name, sub in getattr(group, "commands", {}).items():
        found += _walk(sub, [*path, name])
    return found


COMMANDS = _walk(typer.main.get_command(app), [])
IDS = [" ".join(path) or "transferlab" for path, _ in COMMANDS]
ARGUMENTS = {"DATA", "RUN", "MODEL", "IMAGE", "PATTERN", "NAME"}  # what a positional argument may be called
# Flags whose meaning is the command's own by nature, and why; every other flag means one thing everywhere.
PER_COMMAND = {
    "--out": "where the command writes its result, and a run folder, a PNG and a report are different things",
    "--seed": "the seed of what the command draws at random: the data split, the attack's random start, the dream's noise",
    "--steps": "the steps of the command's own optimisation: lr-find's test, the attack, the dream",
    "--lr": "the learning rate of the command's own optimiser: fine-tuning's head, the dream's Adam",
}
# (flag, command) pairs that differ from the flag's meaning elsewhere, and why.
EXCEPTIONS = {
    ("--precision", "attack"): "attacks take gradients, which underflow in fp16 without loss scaling: auto | bf16 | fp32",
    ("--precision", "robustness"): "as attack",
}


def _help(path: list[str]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.output


def _visible_options(command: Any) -> list[Any]:
    return [p for p in command.get_params(typer.Context(command)) if p.param_type_name == "option" and not p.hidden]


def _meaning(help_text: str) -> str:
    """What a flag is: its help up to the first "; " (after it, what this command adds) or "[default"."""
    return re.split(r"; | \[default", help_text)[0].strip().rstrip(".")


def _choices(param: Any) -> tuple[str, ...] | None:
    descriptor = getattr(param, "type_descriptor", None)
    return tuple(map(str, descriptor.choices)) if descriptor is not None and descriptor.is_choice else None


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_help_shows_no_python_types_and_every_option_says_what_it_does(path, command) -> None:
    text = _help(path)
    assert "<bool>" not in text, "a flag takes no value: its help row shows none"
    assert "list[" not in text, "a repeatable option names its value (metavar), not its Python type"
    assert "▌" not in text, "a help text that starts like markdown (>, #, -) renders as a block"
    for p in _visible_options(command):
        assert p.help, f"{' '.join(path)} {p.opts[0]} has no help"
        assert not re.match(r"\s*([>#*-]|\d+\.)\s", p.help), f"{' '.join(path)} {p.opts[0]}: {p.help!r} renders as markdown"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_arguments_are_named_alike(path, command) -> None:
    for p in command.params:
        if p.param_type_name == "argument":
            name = p.metavar or p.name
            assert name in ARGUMENTS, f"{' '.join(path)}: argument {name!r}, expected one of {sorted(ARGUMENTS)}"
            assert p.help, f"{' '.join(path)} {name} has no help"


def test_a_flag_means_one_thing_in_every_command() -> None:
    seen: dict[str, dict[tuple, list[str]]] = {}
    for path, command in COMMANDS:
        where = " ".join(path) or "transferlab"
        for p in _visible_options(command):
            if p.opts[0] in PER_COMMAND or (p.opts[0], where) in EXCEPTIONS:
                continue
            long = next(o for o in p.opts if o.startswith("--"))
            for name in p.opts + p.secondary_opts:
                meaning = (long, _meaning(p.help or ""), _choices(p), p.is_flag)
                seen.setdefault(name, {}).setdefault(meaning, []).append(where)
    several = {name: meanings for name, meanings in seen.items() if len(meanings) > 1}
    assert not several, "flags with more than one meaning:\n" + "\n".join(
        f"{name}: " + " | ".join(f"{m[1]!r} {m[2] or ''} in {', '.join(cmds)}" for m, cmds in meanings.items()) for name, meanings in several.items())


OLD_SPELLINGS = [("train", "--fp32"), ("attack", "--label"), ("robustness", "--limit"), ("audit", "--limit"), ("features", "--top"), ("explain", "--split"), ("compare", "--backbones")]


@pytest.mark.parametrize(("command", "old"), OLD_SPELLINGS)
def test_old_spellings_are_kept_but_hidden(command: str, old: str) -> None:
    (cmd,) = [c for path, c in COMMANDS if path == [command]]
    (param,) = [p for p in cmd.params if old in getattr(p, "opts", [])]
    assert param.hidden and old not in re.findall(r"--[\w-]+", _help([command]))


def test_version(capsys, monkeypatch) -> None:
    code, out, _ = cli(capsys, monkeypatch, "--version")
    assert code == 0 and out.strip() == f"transferlab {__version__}"


def test_debug_after_the_command_shows_the_traceback(capsys, monkeypatch) -> None:
    import transferlab as tl

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(tl, "list_backbones", broken)
    with pytest.raises(ZeroDivisionError):
        cli(capsys, monkeypatch, "backbones", "--debug")
    with pytest.raises(ZeroDivisionError):
        cli(capsys, monkeypatch, "backbones", "res*", "--debug")
    code, _, err = cli(capsys, monkeypatch, "backbones")  # and without it, one line
    assert code == 1 and len(err.strip().splitlines()) == 1


BAD_CHOICES = [
    (["train", "x", "--strategy", "fast"], "--strategy"),
    (["train", "x", "--optimizer", "lion"], "--optimizer"),
    (["train", "x", "--ood-score", "vibes"], "--ood-score"),
    (["evaluate", "run", "data", "--split", "everything"], "--split"),
    (["predict", "efficientnet_lite0", "x.jpg", "--precision", "fp8"], "--precision"),
    (["explain", "efficientnet_lite0", "--score", "data", "--score-split", "val"], "--score-split"),
    (["export", "run", "--format", "tflite"], "--format"),
    (["attack", "efficientnet_lite0", "x.jpg", "--norm", "L3"], "--norm"),
    (["dream", "efficientnet_lite0", "-c", "cat", "--param", "wavelet"], "--param"),
    (["check", "data", "--layout", "csv"], "--layout"),
]
RUN_IN_A_FRESH_PROCESS = """
import json, sys
from transferlab.cli import main
sys.argv = ["transferlab", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules}))
"""


@pytest.mark.parametrize(("args", "flag"), BAD_CHOICES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_CHOICES])
def test_a_bad_choice_is_refused_by_the_parser_before_torch_loads(args: list[str], flag: str, tmp_path: Path) -> None:
    """`train x --strategy fast` took 5 s of loading to be refused: the parser knows the choices."""
    done = subprocess.run([sys.executable, "-c", RUN_IN_A_FRESH_PROCESS, *args], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"code": 2, "torch": False}, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Invalid value for") and flag in last and "is not one of" in last, done.stderr


def test_a_name_that_is_neither_a_run_nor_a_backbone_says_both(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    photo = make_photo(tmp_path / "x.jpg", 0, seed=0)
    code, _, err = cli(capsys, monkeypatch, "predict", "demo", photo)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "no run folder 'demo' and no backbone of that name" in err and "transferlab train" in err
    code, _, err = cli(capsys, monkeypatch, "predict", "resnet5O", photo)
    assert code == 1 and "no run folder 'resnet5O'" in err and "did you mean" in err and "resnet50" in err
