"""The command line's grammar in one place: options built from a config dataclass (each field's ``option`` help
becomes one flag, so a new recipe field shows up in ``--help`` without being declared twice), closed choices
refused by the parser before anything loads, old flag spellings kept as hidden aliases, ``--debug`` anywhere,
and help without ``<bool>``."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

import typer
from typer.core import TyperCommand, TyperGroup

DEBUG_FLAG = "--debug"


def choice(values: Sequence[str]) -> Any:
    """The type of an option that accepts only ``values``: the parser refuses anything else with the list."""
    return Literal[tuple(values)]  # type: ignore[valid-type]


def _plain(annotation: Any) -> Any:
    """``X | None`` as ``Optional[X]`` (what typer understands on every supported Python)."""
    args = typing.get_args(annotation)
    if (typing.get_origin(annotation) in (typing.Union, types.UnionType)) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return Optional[inner]
    return annotation


def _field_option(f: dataclasses.Field, annotation: Any, prefix: str, help_prefix: str, panel: str | None) -> inspect.Parameter:
    flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
    choices = f.metadata.get("choices")
    info = typer.Option(flag, help=help_prefix + f.metadata["help"], rich_help_panel=panel, case_sensitive=not choices)
    kind = choice(choices) if choices else _plain(annotation)
    return inspect.Parameter(prefix + f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=Annotated[kind, info])


def config_options(cls: type, *, param: str, prefix: str = "", help_prefix: str = "", panel: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a typer command whose parameter ``param`` is a ``cls`` instance: the command gets one option per
    field of ``cls`` that carries help (``--field-name``, or the field's own ``flag``; a field with ``choices``
    accepts only those) and receives ``cls(**values)``.

    ``prefix`` keeps the fields' Python names apart from the command's own (``batch_size`` of the recipe
    against the command's ``batch_size``); the flags are not prefixed.
    """
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if "help" in f.metadata]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        options = [_field_option(f, hints[f.name], prefix, help_prefix, panel) for f in fields]
        mine = list(signature.parameters.values())
        at = [p.name for p in mine].index(param)
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in mine[:at] + options + mine[at + 1:]]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(prefix + f.name) for f in fields}
            return func(**kwargs, **{param: cls(**values)})

        command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        return command

    return decorate


def field_help(cls: type, name: str) -> str:
    """The ``option`` help of ``cls``'s field ``name``: for a command whose flag means that field but is not built
    from the whole class (``calibrate --accept``), so the text is written once."""
    return next(f.metadata["help"] for f in dataclasses.fields(cls) if f.name == name)


def field_choices(cls: type, name: str) -> Any:
    """The ``choice`` type of ``cls``'s field ``name`` (``evaluate --precision`` accepts what ``train``'s does)."""
    return choice(next(f.metadata["choices"] for f in dataclasses.fields(cls) if f.name == name))


@dataclass(frozen=True)
class Renamed:
    """An old spelling of a flag, kept hidden for a release: ``old`` sets the command's parameter ``to`` (to
    ``value`` when the old spelling was a switch, e.g. ``--fp32`` for ``--precision fp32``)."""

    old: str
    to: str
    value: Any = None


def renamed(*aliases: Renamed) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a typer command so each alias's old flag still works, hidden from ``--help`` and silent (a note
    on stderr would turn a one-line error into two; the changelog names the new spellings)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        params = dict(signature.parameters)
        hidden = [_alias_parameter(alias, params[alias.to]) for alias in aliases]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            for alias, p in zip(aliases, hidden):
                given = kwargs.pop(p.name)
                if not (given is None or given is False or given == []):
                    kwargs[alias.to] = alias.value if alias.value is not None else given
            return func(**kwargs)

        command.__signature__ = signature.replace(parameters=[*params.values(), *hidden])  # type: ignore[attr-defined]
        return command

    return decorate


def _alias_parameter(alias: Renamed, target: inspect.Parameter) -> inspect.Parameter:
    name = "_old_" + alias.old.lstrip("-").replace("-", "_")
    if alias.value is not None:  # a switch
        return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, typer.Option(alias.old, hidden=True)])
    kind = typing.get_args(target.annotation)[0] if typing.get_origin(target.annotation) is Annotated else target.annotation
    if typing.get_origin(kind) is not list:
        kind = Optional[_plain(kind)] if type(None) not in typing.get_args(kind) else kind
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[kind, typer.Option(alias.old, hidden=True)])


def _no_type(ctx: Any = None) -> None:
    return None


def _choices_in_one_line(param: Any) -> Callable[..., str]:
    choices = ", ".join(map(str, param.type_descriptor.choices))
    return lambda ctx=None: f"Choose from {choices}."


class _PlainHelp:
    """Help rows without Python types: a flag takes no value, so it shows none (typer would print ``<bool>``),
    and a repeated argument's metavar (``IMAGE...``) says what it takes (typer would print ``<list[str]>``);
    a missing choice argument is one line, as every usage error (typer lists the choices a line each)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for p in params:
            if getattr(p, "is_flag", False):
                p.metavar = ""
            elif p.param_type_name == "argument" and p.nargs != 1:
                p.display_type_rich = _no_type
            elif p.param_type_name == "argument" and getattr(getattr(p, "type_descriptor", None), "is_choice", False):
                p.get_missing_message = _choices_in_one_line(p)
        return params


class Command(_PlainHelp, TyperCommand):
    """Every ``transferlab`` command."""


class Group(_PlainHelp, TyperGroup):
    """The ``transferlab`` group: ``--debug`` is read wherever it stands before a bare ``--``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        if DEBUG_FLAG in args[:end] and ctx.parent is None:
            args = [DEBUG_FLAG, *(a for a in args[:end] if a != DEBUG_FLAG), *args[end:]]
        return super().parse_args(ctx, args)


class App(typer.Typer):
    """``typer.Typer`` whose commands are ``Command``s and whose groups are ``Group``s."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=Group, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", Command)
        return super().command(*args, **kwargs)
