"""Recipe flags come from the config dataclasses: every field is a flag, and the flag's value reaches the recipe."""

import dataclasses

import pytest
import typer
from typer.testing import CliRunner

from transferlab._cli_options import config_options
from transferlab.cli import app
from transferlab.inspect.dream.config import DreamConfig
from transferlab.train.config import FinetuneConfig


@pytest.mark.parametrize("cls", [FinetuneConfig, DreamConfig])
def test_every_recipe_field_has_help_so_it_becomes_a_flag(cls: type) -> None:
    missing = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("help")]
    assert not missing, f"{cls.__name__} fields without option(...) help: {missing}"


@pytest.mark.parametrize(("command", "cls"), [("train", FinetuneConfig), ("dream", DreamConfig)])
def test_help_lists_every_recipe_field(command: str, cls: type) -> None:
    text = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250"}).output
    for f in dataclasses.fields(cls):
        flag = (f.metadata.get("flag") or "--" + f.name.replace("_", "-")).split("/")[0]
        assert flag in text, f"{flag} missing from `transferlab {command} --help`"


def test_flag_values_reach_the_recipe_and_defaults_stay() -> None:
    seen = {}
    demo = typer.Typer()

    @demo.command()
    @config_options(FinetuneConfig, param="recipe", prefix="ft_")
    def run(batch_size: int = 1, recipe: FinetuneConfig = FinetuneConfig()) -> None:
        seen["batch_size"], seen["recipe"] = batch_size, recipe

    result = CliRunner().invoke(demo, ["--batch-size", "3", "--ft-batch-size", "8", "--no-refit-head", "--warmup", "0", "--compile", "--unfreeze", "2"])
    assert result.exit_code == 0, result.output
    assert seen["batch_size"] == 3  # the command's own option is not the recipe's
    assert seen["recipe"] == FinetuneConfig(batch_size=8, refit_head=False, warmup_epochs=0.0, compile=True, unfreeze="2")
    assert CliRunner().invoke(demo, []).exit_code == 0 and seen["recipe"] == FinetuneConfig()


def test_optional_fields_accept_a_value_or_nothing() -> None:
    seen = {}
    demo = typer.Typer()

    @demo.command()
    @config_options(DreamConfig, param="config")
    def run(config: DreamConfig = DreamConfig()) -> None:
        seen["config"] = config

    assert CliRunner().invoke(demo, ["--tv", "0", "--size", "64", "--no-decorrelate"]).exit_code == 0
    assert (seen["config"].tv, seen["config"].size, seen["config"].decorrelate) == (0.0, 64, False)
    assert CliRunner().invoke(demo, []).exit_code == 0 and seen["config"] == DreamConfig()


def test_attack_flags_default_to_the_library_recipe() -> None:
    from transferlab.attacks import AttackConfig
    from transferlab.cli import AttackFlags

    assert AttackFlags().config("4/255", seed=0) == AttackConfig()
    assert AttackFlags(norm="l2", alpha="1/255").config("0.5", seed=3) == AttackConfig(norm="L2", eps=0.5, alpha=1 / 255, seed=3)


def test_no_help_text_hides_words_in_angle_brackets() -> None:
    """Help is rendered as markdown, where ``<data>`` reads as an HTML tag and vanishes: write ``DATA``."""
    import re

    import click

    root = typer.main.get_command(app)

    def commands(group: click.Group):
        for cmd in group.commands.values():
            yield from commands(cmd) if isinstance(cmd, click.Group) else [cmd]

    hidden = [f"{cmd.name} {p.name}: {p.help}" for cmd in commands(root) for p in cmd.params if re.search(r"<\w", getattr(p, "help", None) or "")]
    assert not hidden, hidden


def test_choice_fields_are_refused_by_the_parser_and_their_values_reach_the_recipe() -> None:
    seen = {}
    demo = typer.Typer()

    @demo.command()
    @config_options(FinetuneConfig, param="recipe")
    def run(recipe: FinetuneConfig = FinetuneConfig()) -> None:
        seen["recipe"] = recipe

    refused = CliRunner().invoke(demo, ["--optimizer", "lion"])
    assert refused.exit_code == 2 and "lion" in refused.output and "adamw" in refused.output and "recipe" not in seen
    assert CliRunner().invoke(demo, ["--optimizer", "SGD"]).exit_code == 0 and seen["recipe"].optimizer == "sgd"  # any case, stored as the library spells it


def test_the_command_line_choices_are_the_librarys() -> None:
    """The choices are written where importing them loads no torch; here they are held to the library's own."""
    from transferlab.attacks import base, config
    from transferlab.cli import AttackFlags
    from transferlab.data import augment, layouts, load, options
    from transferlab.train.config import AUGMENTATIONS

    def choices(cls: type, name: str) -> tuple:
        return next(f.metadata["choices"] for f in dataclasses.fields(cls) if f.name == name)

    assert (options.LAYOUTS, options.LABELS, AUGMENTATIONS) == (layouts.LAYOUTS, load.LABELS, augment.AUGMENTATIONS)
    assert set(choices(AttackFlags, "method")) == set(config.METHODS) and set(choices(AttackFlags, "norm")) == set(base.NORMS)
    assert set(choices(AttackFlags, "precision")) == set(base.PRECISIONS)


def test_an_old_spelling_still_works_and_is_hidden() -> None:
    from typing import Annotated, Optional

    from transferlab._cli_options import Renamed, renamed

    seen = {}
    demo = typer.Typer()

    @demo.command()
    @renamed(Renamed("--top", to="channels"), Renamed("--fp32", to="precision", value="fp32"))
    def run(channels: Annotated[int, typer.Option("--channels", help="How many.")] = 16,
            precision: Annotated[str, typer.Option(help="Which.")] = "auto", name: Annotated[Optional[str], typer.Option(help="A name.")] = None) -> None:
        seen.update(channels=channels, precision=precision)

    assert CliRunner().invoke(demo, ["--top", "4", "--fp32"]).exit_code == 0 and seen == {"channels": 4, "precision": "fp32"}
    assert CliRunner().invoke(demo, ["--top", "0"]).exit_code == 0 and seen["channels"] == 0  # a falsy value is still given
    assert CliRunner().invoke(demo, []).exit_code == 0 and seen == {"channels": 16, "precision": "auto"}
    text = CliRunner().invoke(demo, ["--help"], env={"COLUMNS": "200"}).output
    assert "--channels" in text and "--top" not in text and "--fp32" not in text
