"""The pet-nursery app: a web page and a JSON API over one trained run (FastAPI + uvicorn).

    transferlab serve runs/pets            # http://127.0.0.1:8000 ; API docs at /docs, schema at /openapi.json

The run is loaded once, on ``workers`` replicas of the model. Requests that arrive within a few milliseconds
of each other share one forward pass (dynamic batching, ``batcher``); a Grad-CAM request has a pass of its own
(it hooks the network). The queue is bounded: past it a request gets 503 with Retry-After. Every bad upload
gets a 4xx JSON ``{"error": "<one sentence>"}``.
"""

from __future__ import annotations

from .app import create_app, serve
from .predictor import ServeConfig, set_threshold

__all__ = ["ServeConfig", "create_app", "serve", "set_threshold"]
