"""PEP 562 lazy attributes: a package lists what it exports, and each module is imported on first use.

``import transferlab`` and ``transferlab --help`` then load no torch; a command loads what it uses.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def attach(package: str, names: dict[str, str] | None = None, fallback: str | None = None) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: the package's ``__name__``.
        names: attribute -> the module (relative to ``package``) that defines it under the same name.
        fallback: a module whose attributes answer every other name.
    """
    names = dict(names or {})

    def __getattr__(name: str) -> Any:
        where = names.get(name, fallback)
        if where is None or name.startswith("__"):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(where, package)
        try:
            value = getattr(module, name)
        except AttributeError:
            if module.__name__ != f"{package}.{name}":
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
            value = module  # the name is the submodule itself (``tl.inspect``)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        extra = dir(importlib.import_module(fallback, package)) if fallback else []
        return sorted({*names, *vars(sys.modules[package]), *extra})

    return __getattr__, __dir__


def keep_functions(package: str, names: set[str]) -> None:
    """Let ``package.NAME`` stay the function it exports even after the same-named submodule is first
    imported (``transferlab.train``, the function, beside ``transferlab/train/``, the package): the
    import system would otherwise overwrite the attribute with the module."""
    import types

    class _Package(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in names and isinstance(value, types.ModuleType):
                return  # the submodule stays reachable as sys.modules[f"{package}.{name}"]
            super().__setattr__(name, value)

    sys.modules[package].__class__ = _Package
