"""Bounded load test of ``transferlab serve`` on loopback: throughput, p50/p95 latency, errors, peak memory.

    PYTHONPATH=src python benchmarks/serve_load.py RUN [--requests 500] [--concurrency 8] [--gradcam] [--workers 1]
        [--serve-args "--batch-window-ms 5"] [--baseline-src OLD/src] [--rounds 1] [--retry] [--client raw]

Starts the real server (uvicorn, in a child process) on a free port, waits for ``/health``, then sends
``--requests`` ``POST /predict`` requests, ``--concurrency`` at a time, each one real photo from the Oxford
mini set (cycled). Peak memory is the server process's ``VmHWM`` (Linux).

``--baseline-src DIR`` also serves from another checkout's ``src`` (e.g. ``git worktree add ../old HEAD~3``),
alternating baseline and current round by round, so both see the same machine load; the last lines give the
medians and the ratio. ``--serve-args`` go to the current server only.

Overload: many clients against a small queue, e.g. ``--concurrency 64 --serve-args "--max-queue 8"``. Every
503 is checked for a Retry-After header and a one-sentence JSON ``error``; with ``--retry`` a client waits
Retry-After seconds and sends the photo again, so every request must end answered (200): nothing lost.

The load generator shares the machine with the server: each line gives the CPU it took per request.
``--client raw`` replaces httpx by a minimal HTTP/1.1 client (each request's bytes built once, one keep-alive
socket per client, a reply read by its Content-Length), to see how much of the figure the client costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OXFORD = ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini" / "images"


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)  # seconds, first send to final answer (retries included)
    refusal_latencies: list[float] = field(default_factory=list)  # seconds from send to each 503
    statuses: dict[int, int] = field(default_factory=dict)  # final status of each request (-1: connection error)
    refused: int = 0  # 503 answers seen (a retried request can count several)
    refusals_well_formed: int = 0  # of those, with an integer Retry-After >= 1 and a one-line JSON "error"
    wall: float = 0.0
    peak_mb: float = float("nan")
    server_cpu: float = float("nan")  # CPU seconds the server used during the load (all its threads)
    client_cpu: float = float("nan")  # and this load generator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all threads (Linux ``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def well_formed_refusal(reply: httpx.Response | Reply) -> bool:
    after = reply.headers.get("retry-after", "")
    try:
        message = reply.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return after.isdigit() and int(after) >= 1 and isinstance(message, str) and "\n" not in message


@dataclass
class Reply:
    """The parts of an HTTP reply the load test reads (what ``httpx.Response`` offers, for the raw client)."""

    status_code: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class RawClient:
    """One keep-alive HTTP/1.1 connection per client, requests pre-encoded: a load generator that costs little CPU."""

    BOUNDARY = "transferlab-load-boundary"

    def __init__(self, url: str) -> None:
        self.host, self.port = url.removeprefix("http://").split(":")
        self.requests: dict[tuple[str, bool], bytes] = {}
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    def request(self, name: str, data: bytes, gradcam: bool) -> bytes:
        """The whole POST /predict for one photo, built once per photo."""
        key = (name, gradcam)
        if key not in self.requests:
            body = (f'--{self.BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                    + data + f"\r\n--{self.BOUNDARY}--\r\n".encode())
            head = (f"POST /predict?gradcam={str(gradcam).lower()} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                    f"Content-Type: multipart/form-data; boundary={self.BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n")
            self.requests[key] = head.encode() + body
        return self.requests[key]

    async def post(self, name: str, data: bytes, gradcam: bool) -> Reply:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, int(self.port))
        reader, writer = self.streams
        try:
            writer.write(self.request(name, data, gradcam))
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = dict((k.strip().lower(), v.strip()) for k, _, v in (h.partition(":") for h in head[1:] if h))
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        except (OSError, asyncio.IncompleteReadError):
            self.close()
            raise httpx.ConnectError("connection lost") from None
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Reply(int(head[0].split()[1]), headers, body)

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def load(url: str, blobs: list[tuple[str, bytes]], n: int, concurrency: int, gradcam: bool, retry: bool, client_kind: str = "httpx") -> Outcome:
    out = Outcome()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        raw = RawClient(url) if client_kind == "raw" else None
        while not queue.empty():
            i = queue.get_nowait()
            name, data = blobs[i % len(blobs)]
            t = time.perf_counter()
            while True:
                try:
                    if raw is not None:
                        reply = await raw.post(name, data, gradcam)
                    else:
                        reply = await client.post(f"{url}/predict", params={"gradcam": str(gradcam).lower()}, files={"files": (name, data, "image/jpeg")})
                    status = reply.status_code
                except httpx.HTTPError:
                    status = -1
                if status != 503:
                    break
                out.refusal_latencies.append(time.perf_counter() - t)
                out.refused += 1
                out.refusals_well_formed += well_formed_refusal(reply)
                if not retry:
                    break
                await asyncio.sleep(float(reply.headers.get("retry-after", "1")))
            out.latencies.append(time.perf_counter() - t)
            out.statuses[status] = out.statuses.get(status, 0) + 1
        if raw is not None:
            raw.close()

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    out.wall = time.perf_counter() - started
    return out


def measure(run: str, src: Path, extra: list[str], args: argparse.Namespace, blobs: list[tuple[str, bytes]]) -> Outcome:
    """Serve ``run`` from ``src`` with ``extra`` flags, load it, stop it."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(src)}
    workers = ["--workers", str(args.workers)] if args.workers is not None else []  # else each server's own default
    cmd = [sys.executable, "-m", "transferlab", "serve", run, "--port", str(port), *workers, *extra]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            sys.exit(f"the server from {src} did not start")
        asyncio.run(load(url, blobs, min(16, args.requests), min(4, args.concurrency), args.gradcam, True))  # warm-up: first passes, thread pools
        cpu, mine = cpu_seconds(server.pid), time.process_time()
        out = asyncio.run(load(url, blobs, args.requests, args.concurrency, args.gradcam, args.retry, args.client))
        out.server_cpu, out.client_cpu = cpu_seconds(server.pid) - cpu, time.process_time() - mine
        out.peak_mb = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return out


def line(label: str, args: argparse.Namespace, out: Outcome) -> str:
    ms = np.array(out.latencies) * 1e3
    answered = out.statuses.get(200, 0)
    refusals = ""
    if out.refused:
        refused_ms = np.array(out.refusal_latencies) * 1e3
        refusals = (f"; 503s {out.refused} ({out.refusals_well_formed} with Retry-After + JSON error, answered in p50 {np.percentile(refused_ms, 50):.0f} ms, "
                    f"p95 {np.percentile(refused_ms, 95):.0f} ms)")
    return (f"{label:<9} throughput {args.requests / out.wall:6.1f} req/s ({answered / out.wall:.1f} answered/s); latency p50 {np.percentile(ms, 50):4.0f} ms, "
            f"p95 {np.percentile(ms, 95):4.0f} ms, max {ms.max():5.0f} ms (mean {statistics.fmean(ms):.0f}); statuses {out.statuses}{refusals}; peak RSS {out.peak_mb:.0f} MB; "
            f"CPU per request: server {out.server_cpu / args.requests * 1e3:.1f} ms, client {out.client_cpu / args.requests * 1e3:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, help="model replicas of both servers (default: each server's own default)")
    parser.add_argument("--gradcam", action="store_true")
    parser.add_argument("--serve-args", default="", help="extra `transferlab serve` flags for the current server")
    parser.add_argument("--baseline-src", type=Path, help="also serve from this src folder (an older checkout), alternating rounds")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--retry", action="store_true", help="on 503, wait Retry-After seconds and send again")
    parser.add_argument("--client", choices=("httpx", "raw"), default="httpx", help="raw: a minimal pre-encoded HTTP/1.1 client that costs less CPU")
    args = parser.parse_args()
    photos = sorted(OXFORD.glob("*.jpg"))[:64]
    if not photos:
        sys.exit(f"no photos in {OXFORD}")
    blobs = [(p.name, p.read_bytes()) for p in photos]
    run = str(Path(args.run).resolve())
    servers = ([("baseline", args.baseline_src.resolve(), [])] if args.baseline_src else []) + [("current", ROOT / "src", shlex.split(args.serve_args))]
    print(f"{args.requests} requests, {args.concurrency} concurrent, {args.client} client, workers {args.workers or 'per server default'}, gradcam={args.gradcam}, {len(photos)} Oxford photos cycled; "
          f"current serve flags: {args.serve_args or '(defaults)'}; load average before: {os.getloadavg()[0]:.2f}")
    results: dict[str, list[Outcome]] = {label: [] for label, _, _ in servers}
    for r in range(args.rounds):
        for label, src, extra in servers:
            out = measure(run, src, extra, args, blobs)
            results[label].append(out)
            print(f"round {r + 1} " + line(label, args, out), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if len(servers) == 2:
        base, cur = ([args.requests / o.wall for o in results[k]] for k in ("baseline", "current"))
        p95 = {k: statistics.median([float(np.percentile(np.array(o.latencies) * 1e3, 95)) for o in v]) for k, v in results.items()}
        print(f"median throughput: baseline {statistics.median(base):.1f} req/s, current {statistics.median(cur):.1f} req/s "
              f"({statistics.median(cur) / statistics.median(base):.2f}x); median p95: baseline {p95['baseline']:.0f} ms, current {p95['current']:.0f} ms")


if __name__ == "__main__":
    main()
