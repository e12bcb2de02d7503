"""Every command, given a wrong option, a missing argument or a nonsense value, answers as click does
(usage line, reason, exit code 2), never with a traceback."""

import pytest
import typer

from transferlab.cli import app

from .test_cli import cli


def _commands() -> list[tuple[list[str], object]]:
    found = []

    def walk(group, prefix: list[str]) -> None:
        for name, sub in group.commands.items():
            found.append((prefix + [name], sub))
            if hasattr(sub, "commands"):
                walk(sub, prefix + [name])

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = _commands()
IDS = [" ".join(path) for path, _ in COMMANDS]


def _usage_error(code: int, out: str, err: str, reason: str) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in err + out and reason in err
    assert err.strip().splitlines()[-1].startswith("Error:")  # the one line that says what is wrong


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_a_wrong_option_is_a_usage_error(capsys, monkeypatch, path, command) -> None:
    _usage_error(*cli(capsys, monkeypatch, *path, "--nope"), "No such option: --nope")


@pytest.mark.parametrize(("path", "command"), [(p, c) for p, c in COMMANDS if any(getattr(a, "required", False) and a.param_type_name == "argument" for a in c.params)], ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_a_missing_argument_is_a_usage_error(capsys, monkeypatch, path, command) -> None:
    _usage_error(*cli(capsys, monkeypatch, *path), "Missing argument")


def _numeric_option(command):
    for p in command.params:
        if p.param_type_name == "option" and not p.is_flag and p.type_descriptor.annotation in (int, float):
            return p.opts[0]
    return None


@pytest.mark.parametrize(("path", "command"), [(p, c) for p, c in COMMANDS if _numeric_option(c)], ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_a_nonsense_value_is_a_usage_error(capsys, monkeypatch, path, command) -> None:
    option = _numeric_option(command)
    dummies = ["x" for a in command.params if a.param_type_name == "argument" and a.required]
    _usage_error(*cli(capsys, monkeypatch, *path, option, "abc", *dummies), f"Invalid value for '{option}'")


def test_the_issue_example_prints_a_usage_line(capsys, monkeypatch) -> None:
    code, _, err = cli(capsys, monkeypatch, "predict", "x", "y", "--nope")
    assert code == 2 and err.startswith("Usage: ") and "transferlab predict [OPTIONS]" in err.splitlines()[0]


def test_an_unexpected_failure_is_one_line_unless_debug(capsys, monkeypatch) -> None:
    import transferlab as tl

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(tl, "list_backbones", broken)
    code, _, err = cli(capsys, monkeypatch, "backbones")
    assert code == 1 and "unexpected ZeroDivisionError: a bug" in err and "--debug" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ZeroDivisionError):
        cli(capsys, monkeypatch, "--debug", "backbones")
