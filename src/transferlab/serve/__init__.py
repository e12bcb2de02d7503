"""The pet-nursery app: a web page and a JSON API over one trained run (FastAPI + uvicorn).

    transferlab serve runs/pets            # http://127.0.0.1:8000 ; API docs at /docs, schema at /openapi.json

The run is loaded once. Inference runs on ``workers`` replicas of the model, one request at a time each
(Grad-CAM hooks the network, so a replica is never shared between two requests); other requests wait
their turn. Every bad upload gets a 4xx JSON ``{"error": "<one sentence>"}``.
"""

from __future__ import annotations

from .app import create_app, serve
from .predictor import ServeConfig, set_threshold

__all__ = ["ServeConfig", "create_app", "serve", "set_threshold"]
