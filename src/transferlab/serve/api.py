"""Routes, response schemas and error handlers of the service (kept apart from the model logic in ``app``)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, Optional

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .._version import __version__
from .predictor import ApiError, Predictor, ServeConfig, page_html

FIELD = "files"


class Label(BaseModel):
    label: str
    prob: float = Field(ge=0, le=1)
    index: int = Field(ge=0, description="its position in the run's class list")


class Result(BaseModel):
    filename: str
    top: list[Label]
    label: Optional[str] = Field(description="the top class, or null when the photo looks like none of the classes")
    closest: str = Field(description="the top class, also when the photo looks like none of them")
    prob: float = Field(ge=0, le=1, description="its calibrated probability")
    index: int = Field(ge=0, description="its position in the run's class list")
    in_distribution: bool = Field(description="false: 'none of these' (the in-distribution score is below the run's threshold); top[0] is the closest guess")
    score: Optional[float] = Field(None, description="in-distribution score (higher: more like the training photos); null when the run has no threshold")
    n_classes: int
    unsure: bool = Field(description="an in-distribution photo whose top (calibrated) probability is below the 'not sure' threshold")
    gradcam: Optional[str] = Field(None, description="PNG data URL of the Grad-CAM overlay of the top class (with ?gradcam=true)")
    input: Optional[str] = Field(None, description="PNG data URL of the crop the model saw, the same size as the overlay (with ?gradcam=true)")


class Prediction(BaseModel):
    results: list[Result]
    unsure_below: float


class Error(BaseModel):
    error: str = Field(description="one sentence saying what is wrong and what to do")


ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": Error} for s in (400, 413, 415, 422)}
ERRORS[503] = {"model": Error, "description": "the queue is full (or the server is stopping): retry after the Retry-After header's seconds"}


def build(predictor: Predictor) -> FastAPI:
    config = predictor.config

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        predictor.close()  # requests still queued get 503; passes under way finish

    app = FastAPI(
        lifespan=lifespan,
        title="transferlab: pet nursery",
        version=__version__,
        description=f"Photo classifier over {len(predictor.run.classes)} classes ({predictor.run.record.backbone.name}).",
    )

    app.state.predictor = predictor  # its batcher's counters: forward passes, images waiting
    _add_error_handling(app, config)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return page_html(predictor.run)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model")
    async def model_card() -> dict[str, Any]:
        """The model card: backbone, classes, test metrics, the 'not sure' threshold."""
        return predictor.card()

    @app.post("/predict", response_model=Prediction, responses=ERRORS)
    async def predict(
        files: list[UploadFile] = File(..., description="one or more photos (repeat the field for several)"),
        k: int = Query(config.top_k, ge=1, le=1000, description="labels per photo"),
        gradcam: bool = Query(False, description="also return the Grad-CAM overlay of the top class"),
    ) -> dict[str, Any]:
        """Top-k labels with probabilities for each uploaded photo, in upload order."""
        if len(files) > config.max_files:
            raise ApiError(413, f"expected at most {config.max_files} photos per request, got {len(files)} — split them over several requests")
        uploads = [(await upload.read(config.max_bytes + 1), upload.filename or f"file {n + 1}") for n, upload in enumerate(files)]
        rows = await predictor.answer(uploads, k, gradcam)  # 503 at once when the queue is full
        names = [name for _, name in uploads]
        return {"results": [{"filename": n, **r} for n, r in zip(names, rows)], "unsure_below": predictor.threshold}

    return app


def _add_error_handling(app: FastAPI, config: ServeConfig) -> None:
    """Every bad request gets a 4xx ``{"error": "<one sentence>"}``: oversized bodies before they are read,
    our own ``ApiError``s, FastAPI's validation errors and Starlette's HTTP errors."""

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        overhead = 64 * 1024 * config.max_files  # multipart boundaries and part headers
        if size and size.isdigit() and int(size) > config.max_bytes * config.max_files + overhead:
            return JSONResponse({"error": f"the request is larger than {config.max_files} x {config.max_bytes / 1e6:.0f} MB — send fewer or smaller photos"}, 413)
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _one_sentence(exc.errors())}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=getattr(exc, "headers", None))


def _one_sentence(errors: list[dict[str, Any]]) -> str:
    """FastAPI's validation errors as the one sentence a user needs."""
    for e in errors:
        loc = [str(x) for x in e.get("loc", ())]
        if loc[-1:] == [FIELD] or (loc[:1] == ["body"] and len(loc) == 1):
            return f"expected the photo(s) as multipart/form-data in a field named {FIELD!r} — e.g. curl -F {FIELD}=@photo.jpg"
        if loc and loc[0] == "body" and FIELD in loc:
            return f"expected files in the {FIELD!r} field, got text — upload the photo as a file (curl -F {FIELD}=@photo.jpg)"
    e = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
    return f"invalid {where}: {e.get('msg', 'invalid value')}"
