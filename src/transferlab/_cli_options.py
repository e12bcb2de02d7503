"""Command-line options built from a config dataclass: each field's ``option`` help becomes one flag, so a
new recipe field shows up in ``--help`` without being declared twice."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer


def _plain(annotation: Any) -> Any:
    """``X | None`` as ``Optional[X]`` (what typer understands on every supported Python)."""
    args = typing.get_args(annotation)
    if (typing.get_origin(annotation) in (typing.Union, types.UnionType)) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return Optional[inner]
    return annotation


def config_options(cls: type, *, param: str, prefix: str = "", help_prefix: str = "", panel: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a typer command whose parameter ``param`` is a ``cls`` instance: the command gets one option per
    field of ``cls`` that carries help (``--field-name``, or the field's own ``flag``) and receives ``cls(**values)``.

    ``prefix`` keeps the fields' Python names apart from the command's own (``batch_size`` of the recipe
    against the command's ``batch_size``); the flags are not prefixed.
    """
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if "help" in f.metadata]

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        options = []
        for f in fields:
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            info = typer.Option(flag, help=help_prefix + f.metadata["help"], rich_help_panel=panel)
            options.append(inspect.Parameter(prefix + f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=Annotated[_plain(hints[f.name]), info]))
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
