"""Schemathesis against the service's own OpenAPI document: whatever a client sends, never a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis (dev extra) is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

import transferlab as tl  # noqa: E402
from transferlab.serve import ServeConfig, create_app  # noqa: E402


@pytest.fixture(scope="module")
def schema(tiny_run_dir: Path):
    app = create_app(tl.load(tiny_run_dir), ServeConfig(max_files=4))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_generated_request_gets_a_server_error(schema) -> None:
    # Generated multipart bodies are random bytes (and random field layouts), so /predict sees every
    # malformed upload the schema allows; the property is only "never 5xx" and responses match the schema.
    tested = 0
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=op.as_strategy())
        def check(case) -> None:
            response = case.call()
            case.validate_response(response, checks=[not_a_server_error])

        check()
        tested += 1
    assert tested >= 3
