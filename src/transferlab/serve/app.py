"""The service's entry points: the FastAPI app over one run, and uvicorn serving it."""

from __future__ import annotations

from ..errors import ConfigError
from ..features.runtime import cpu_count, intra_op_threads
from ..run.run import Run
from .predictor import Predictor, ServeConfig


def create_app(run: Run, config: ServeConfig = ServeConfig()):
    """The FastAPI app for ``run`` (test it in-process with ``fastapi.testclient.TestClient``)."""
    from .api import build  # FastAPI is an extra: importing transferlab.serve must work without it

    return build(Predictor(run, config))


def serving_threads(config: ServeConfig) -> int:
    """Torch intra-op threads per replica: ``config.threads``, else the cores less one (the event loop and the
    decoding threads keep busy too: on two shared cores a one-thread pass measured more requests per second
    than a two-thread one, whose threads wait on each other), shared among the replicas."""
    return config.threads or max(1, (cpu_count() - 1) // config.workers)


def serve(run: Run, host: str = "127.0.0.1", port: int = 8000, config: ServeConfig = ServeConfig(), log_level: str = "info") -> None:
    """Run the app with uvicorn until interrupted (blocks)."""
    try:
        import uvicorn
    except ImportError as err:
        raise ConfigError("serving needs FastAPI and uvicorn — pip install fastapi uvicorn python-multipart (or, in a clone, pip install -e '.[serve]')") from err
    with intra_op_threads(serving_threads(config)):  # restored when the server stops: serve() may be called from a notebook
        uvicorn.run(create_app(run, config), host=host, port=port, log_level=log_level)
