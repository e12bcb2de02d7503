"""The fault-injection suite: bad files, killed processes, full disks, hostile downloads and model files.

Every test here is marked ``reliability`` and records, through the ``reliability`` fixture, what it tried
(area, fault, number of cases) and what actually happened; ``scripts/reliability_report.py`` runs the
suite and turns those records into RELIABILITY.md.
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
# Without these capabilities root obeys file permissions, so "unreadable file" can be tested as root too.
_DROP_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]

Record = Callable[..., None]


@pytest.fixture
def reliability(record_property: Callable[[str, object], None]) -> Record:
    """``reliability(area, fault, outcome, cases=1)``: one row of RELIABILITY.md, with the observed outcome."""

    def record(area: str, fault: str, outcome: str, cases: int = 1) -> None:
        record_property("reliability", {"area": area, "fault": fault, "cases": cases, "outcome": outcome})

    return record


def env_with_src(**extra: str) -> dict[str, str]:
    """The current environment with ``src/`` importable (for subprocesses)."""
    return {**os.environ, "PYTHONPATH": str(SRC), **extra}


def unprivileged_prefix() -> list[str] | None:
    """A command prefix under which ``chmod 000`` files are unreadable, or None when there is none."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    probe = subprocess.run([*_DROP_DAC, "true"], capture_output=True)
    return _DROP_DAC if probe.returncode == 0 else None


def run_cli(*args: object, prefix: list[str] | None = None, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """``python -m transferlab ARGS`` in a subprocess, as a user would type it."""
    cmd = [*(prefix or []), sys.executable, "-m", "transferlab", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, env=env_with_src(**env), timeout=timeout)


class ArchiveServer:
    """A local HTTP server for the download tests: serves ``files`` with HTTP Range support.

    ``cut[name] = n`` makes the next response for ``name`` stop after n bytes (a dropped connection);
    ``requests`` records (path, Range header) of every request.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                data, start = server.files[name], 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in server.cut:
                    body = body[: server.cut.pop(name)]
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive_server() -> Iterator[ArchiveServer]:
    server = ArchiveServer()
    yield server
    server.close()
