"""One place per setting: a config dataclass field carries its command-line help (``option``), and the CLI
builds its flags from those fields, so a new field appears once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field
from typing import Any


def option(default: Any, help: str, *, flag: str | None = None, choices: Sequence[str] | None = None) -> Any:
    """A dataclass field with ``default`` whose ``transferlab`` flag says ``help`` (``flag``: the flag's
    spelling when it is not ``--field-name``, e.g. ``--refit-head/--no-refit-head``; ``choices``: the only
    values the flag accepts, refused by the command line before anything loads)."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": tuple(choices) if choices else None})
