"""The service's entry points: the FastAPI app over one run, and uvicorn serving it."""

from __future__ import annotations

import os

from ..errors import ConfigError
from ..features.runtime import intra_op_threads
from ..run.run import Run
from .predictor import Predictor, ServeConfig


def create_app(run: Run, config: ServeConfig = ServeConfig()):
    """The FastAPI app for ``run`` (test it in-process with ``fastapi.testclient.TestClient``)."""
    from .api import build  # FastAPI is an extra: importing transferlab.serve must work without it

    return build(Predictor(run, config))


def serve(run: Run, host: str = "127.0.0.1", port: int = 8000, config: ServeConfig = ServeConfig(), log_level: str = "info") -> None:
    """Run the app with uvicorn until interrupted (blocks)."""
    try:
        import uvicorn
    except ImportError as err:
        raise ConfigError("serving needs FastAPI and uvicorn — pip install fastapi uvicorn python-multipart (or, in a clone, pip install -e '.[serve]')") from err
    threads = max(1, (os.cpu_count() or 1) // config.workers) if config.workers > 1 else 0  # replicas share the cores
    with intra_op_threads(threads):  # restored when the server stops: serve() may be called from a notebook
        uvicorn.run(create_app(run, config), host=host, port=port, log_level=log_level)
