"""Run the fault-injection suite and write RELIABILITY.md from what its tests recorded.

    PYTHONPATH=src python scripts/reliability_report.py            # writes RELIABILITY.md
    PYTHONPATH=src python scripts/reliability_report.py --out -    # prints it instead

Every test in tests/reliability/ is marked ``reliability`` and records, with the ``reliability`` fixture,
the area, the bad input or fault it tried, how many cases, and the outcome it observed (the real error
messages, counts of files reused...). This script runs those tests in-process with a small pytest plugin
that collects the records and the pass/fail result of each test, and renders one table. A failed test
shows as FAILED in the table and makes the script exit 1.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMAND = "PYTHONPATH=src python scripts/reliability_report.py"
AREAS = ("Bad input (files)", "Bad input (dataset)", "Faults", "Downloads", "Untrusted files")


class Collector:
    """pytest plugin: each test's outcome and the ``reliability`` records it made."""

    def __init__(self) -> None:
        self.tests: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.tests.setdefault(report.nodeid, {"outcome": "passed", "records": [], "message": "", "seconds": 0.0})
        entry["seconds"] += report.duration
        entry["records"] += [value for key, value in report.user_properties if key == "reliability" and value not in entry["records"]]
        if report.failed:
            entry["outcome"] = "failed"
            entry["message"] = str(report.longrepr).strip().splitlines()[-1][:200] if report.longrepr else ""
        elif report.skipped and entry["outcome"] != "failed":
            entry["outcome"] = "skipped"
            entry["message"] = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)


def render(tests: dict[str, dict], seconds: float) -> str:
    import PIL
    import torch

    rows = defaultdict(list)
    for nodeid, t in tests.items():
        for r in t["records"]:
            rows[r["area"]].append((r["fault"], r["cases"], r["outcome"], t["outcome"]))
    passed = sum(t["outcome"] == "passed" for t in tests.values())
    failed = [n for n, t in tests.items() if t["outcome"] == "failed"]
    skipped = {n: t["message"] for n, t in tests.items() if t["outcome"] == "skipped"}
    n_rows = sum(len(v) for v in rows.values())
    n_cases = sum(c for v in rows.values() for _, c, _, _ in v)
    verdict = "**all survived, nothing lost**" if not failed else f"**{len(failed)} test(s) FAILED**"
    lines = [
        "# Reliability",
        "",
        "What transferlab was made to survive, tried by the fault-injection suite in `tests/reliability/`",
        "(pytest marker `reliability`): bad files next to good ones, killed processes, full disks, two writers",
        "on one cache, broken and hostile downloads, and model files that try to run code. Each row is written",
        "by the test that tried it, with the outcome it observed (real messages, real counts).",
        "",
        f"Reproduce (writes this file): `{COMMAND}` — or just run the tests: "
        "`PYTHONPATH=src python -m pytest -m reliability`.",
        "",
        f"Last run: {time.strftime('%Y-%m-%d')}, {len(tests)} tests in {seconds:.0f} s on {platform.system()} "
        f"{platform.machine()} ({__import__('os').cpu_count()} cores, shared and under load), Python {platform.python_version()}, "
        f"torch {torch.__version__}, Pillow {PIL.__version__}: {n_rows} bad inputs and faults, {n_cases} cases — {verdict}"
        f" ({passed} passed, {len(failed)} failed, {len(skipped)} skipped).",
        "",
    ]
    for area in [a for a in AREAS if a in rows] + sorted(set(rows) - set(AREAS)):
        lines += [f"## {area}", "", "| Bad input or fault | Cases | Outcome | Result |", "|---|---:|---|---|"]
        for fault, cases, outcome, result in rows[area]:
            mark = {"passed": "survived", "failed": "**FAILED**"}.get(result, result)
            lines.append(f"| {_cell(fault)} | {cases} | {_cell(outcome)} | {mark} |")
        lines.append("")
    if skipped or failed:
        lines += ["## Not run or failed", ""]
        lines += [f"- FAILED `{n}`: {_cell(tests[n]['message'])}" for n in failed]
        lines += [f"- skipped `{n}`: {_cell(m)}" for n, m in skipped.items()]
        lines.append("")
    lines += [
        "## What the rows rely on",
        "",
        "- Every image is checked from its header before it is decoded (`sniff`), and fully decoded by `check` and",
        "  during feature extraction; a file that fails is skipped with a one-line reason, never fatal. Images over",
        "  `transferlab.data.MAX_PIXELS` (89.5 M) are refused from the header; under `MIN_SIDE` (32 px) warned.",
        "- Cache shards, checkpoints and run files are written to a temporary file, fsynced, then renamed: a reader",
        "  sees the old file or the new one. A full disk raises `StorageError` (one line in the CLI).",
        "- `checkpoint.pt` is rotated to `checkpoint.prev.pt` before each save; a damaged newest checkpoint is moved",
        "  aside and the previous epoch's is resumed from.",
        "- Runs are safetensors + JSON; `.pth` weights and checkpoints are read with `torch.load(weights_only=True)`.",
        "- Downloads go to `.part` files continued with HTTP Range, are checked (md5/sha256) before extraction, and",
        "  archives are checked member by member before anything is written, then extracted into a hidden staging",
        "  folder renamed into place only when complete.",
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    text = re.sub(r"/tmp/pytest-of-[^/]+/pytest-\d+/[^/ '\"]+", "$TMP", str(text))  # this run's temporary folders
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "RELIABILITY.md"), help="file to write, or - for stdout")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, e.g. -k downloads")
    args = parser.parse_args()
    collector = Collector()
    started = time.perf_counter()
    code = pytest.main([str(REPO / "tests" / "reliability"), "-m", "reliability", "-q", "-p", "no:cacheprovider", *args.pytest_args], plugins=[collector])
    text = render(collector.tests, time.perf_counter() - started)
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    return int(code != 0)


if __name__ == "__main__":
    sys.exit(main())
