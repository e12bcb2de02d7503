"""The fault-injection suite: bad files, killed processes, full disks, hostile downloads and model files.

Every test here is marked ``reliability`` and records, through the ``reliability`` fixture, what it tried
(area, fault, number of cases) and what actually happened; ``scripts/reliability_report.py`` runs the
suite and turns those records into RELIABILITY.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
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
