"""Bounded load test of ``transferlab serve`` on loopback: throughput, p50/p95 latency, errors, peak memory.

    PYTHONPATH=src python benchmarks/serve_load.py RUN [--requests 500] [--concurrency 8] [--gradcam] [--workers 1]

Starts the real server (uvicorn, in a child process) on a free port, waits for ``/health``, then sends
``--requests`` ``POST /predict`` requests, ``--concurrency`` at a time, each one real photo from the Oxford
mini set (cycled). Peak memory is the server process's ``VmHWM`` (Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OXFORD = ROOT.parent / "shared" / "data" / "oxford-iiit-pet-mini" / "images"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, photos: list[Path], n: int, concurrency: int, gradcam: bool) -> tuple[list[float], dict[int, int], float]:
    blobs = [(p.name, p.read_bytes()) for p in photos]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            name, data = blobs[i % len(blobs)]
            t = time.perf_counter()
            try:
                reply = await client.post(f"{url}/predict", params={"gradcam": str(gradcam).lower()}, files={"files": (name, data, "image/jpeg")})
                status = reply.status_code
            except httpx.HTTPError:
                status = -1
            latencies.append(time.perf_counter() - t)
            statuses[status] = statuses.get(status, 0) + 1

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--gradcam", action="store_true")
    args = parser.parse_args()
    photos = sorted(OXFORD.glob("*.jpg"))[:64]
    if not photos:
        sys.exit(f"no photos in {OXFORD}")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "transferlab", "serve", args.run, "--port", str(port), "--workers", str(args.workers)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            sys.exit("the server did not start")
        latencies, statuses, wall = asyncio.run(load(url, photos, args.requests, args.concurrency, args.gradcam))
        peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    ms = np.array(latencies) * 1e3
    errors = sum(v for k, v in statuses.items() if k != 200)
    print(f"{args.requests} requests, {args.concurrency} concurrent, {args.workers} worker(s), gradcam={args.gradcam}, {len(photos)} Oxford photos cycled")
    print(f"throughput {args.requests / wall:.1f} req/s; latency p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms, "
          f"max {ms.max():.0f} ms (mean {statistics.fmean(ms):.0f}); statuses {statuses}; errors {errors}; server peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
