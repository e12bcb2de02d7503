"""Errors a user can cause. Each message is one sentence: what was expected, what was found, what to do."""

from __future__ import annotations


class TransferlabError(Exception):
    """Base class: the CLI prints its message as one line (``--debug`` shows the traceback)."""


class DataError(TransferlabError):
    """The data folder cannot be used: missing, unknown layout, too few classes or images."""


class BackboneError(TransferlabError):
    """The backbone name is unknown, or its weights cannot be found."""


class UnknownBackboneError(BackboneError):
    """The name is neither bundled nor a timm architecture; ``close`` holds the nearest names."""

    close: tuple[str, ...] = ()


class RunError(TransferlabError):
    """A run directory is missing, incomplete, malformed, or does not match the data."""


class InputError(TransferlabError, ValueError):
    """A tensor, array or image handed to a function has the wrong shape, type or values
    (``gradcam`` given a batch of two, metrics given probabilities that are not finite)."""


class ConfigError(TransferlabError, ValueError):
    """An option has a value outside its choices (``--optimizer lion``)."""


class StorageError(TransferlabError, OSError):
    """The disk (or quota) filled up while writing a cache entry, checkpoint or run file."""


class DamagedRunError(RunError):
    """A file of a run folder is not the one that was written (its digest differs): restore or retrain it."""


class BusyError(TransferlabError):
    """Another process is writing the same run folder, output folder or cache right now."""
