"""Serving for real: `transferlab serve RUN` under uvicorn in a subprocess on 127.0.0.1, answering /health and
/predict with two model replicas; the replicas and ``ServeConfig(threshold=...)`` in-process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

import transferlab as tl

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
import httpx  # noqa: E402  (comes with the serve extra's test client)
from fastapi.testclient import TestClient  # noqa: E402

from transferlab.serve import ServeConfig, create_app, set_threshold  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"
READY = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@contextlib.contextmanager
def serving(*args: object, start_s: float = 180) -> Iterator[str]:
    """``transferlab serve ARGS --port 0`` in a subprocess; yields its URL once uvicorn says where it listens.

    Port 0: the server binds a port the OS picks and reports it, so no other process can take it in between.
    """
    cmd = [sys.executable, "-m", "transferlab", "serve", *map(str, args), "--host", "127.0.0.1", "--port", "0"]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(SRC)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()  # drains the pipe to the end
    log: list[str] = []
    try:
        deadline, port = time.monotonic() + start_s, None
        while port is None:
            try:
                log.append(lines.get(timeout=0.5))
            except queue.Empty:
                assert proc.poll() is None, "the server exited:\n" + "".join(log)
                assert time.monotonic() < deadline, f"no 'Uvicorn running on' line within {start_s:.0f} s:\n" + "".join(log)
                continue
            found = READY.search(log[-1])
            port = int(found.group(1)) if found else None
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()  # uvicorn shuts down cleanly on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _photos(run: tl.Run) -> list[Path]:
    """One of the run's own training photos per class (in distribution: accepted)."""
    return [next(Path(run.meta["data"]["root"]).glob(f"{c}/*_3.jpg")) for c in run.classes]


def test_serve_command_answers_health_and_predict_with_two_replicas(tiny_run_dir: Path) -> None:
    run = tl.load(tiny_run_dir)
    photos = _photos(run)
    want = run.predict(photos, k=3, precision="fp32")

    def ask(url: str, photo: Path) -> httpx.Response:
        return httpx.post(f"{url}/predict?k=3", files={"files": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=120)

    with serving(tiny_run_dir, "--workers", "2", "--threshold", "0.99") as url:
        assert httpx.get(f"{url}/health", timeout=30).json() == {"status": "ok"}
        assert httpx.get(f"{url}/model", timeout=30).json()["unsure_below"] == 0.99
        with ThreadPoolExecutor(len(photos)) as pool:  # at once: two replicas infer, the third request waits its turn
            replies = list(pool.map(lambda p: ask(url, p), photos))
    for reply, expected in zip(replies, want):
        assert reply.status_code == 200, reply.text
        body = reply.json()
        got = body["results"][0]
        assert body["unsure_below"] == 0.99 and got["label"] == expected["label"] is not None
        assert [t["label"] for t in got["top"]] == [t["label"] for t in expected["top"]]
        assert [t["prob"] for t in got["top"]] == pytest.approx([t["prob"] for t in expected["top"]], abs=1e-4)
        assert got["unsure"] == (got["top"][0]["prob"] < 0.99)


def test_two_replicas_infer_two_requests_at_the_same_time(tiny_run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transferlab.serve.predictor import Predictor

    both_inside = threading.Barrier(2, timeout=60)  # passes only while two inferences run at once (one replica: broken)
    real = Predictor._answer

    def answer(self, model, *args):
        both_inside.wait()
        return real(self, model, *args)

    monkeypatch.setattr(Predictor, "_answer", answer)
    predictor = Predictor(tl.load(tiny_run_dir), ServeConfig(workers=2, max_batch=1))  # one image a pass: two passes
    assert len(predictor.replicas) == 2 and predictor.replicas[0] is not predictor.replicas[1]
    view = predictor.run.model.preprocess.to_uint8(Image.new("RGB", (64, 48), (200, 30, 30)))

    async def two_requests():
        return await asyncio.gather(predictor.infer([view], 2, False), predictor.infer([view], 2, False))

    first, second = asyncio.run(two_requests())
    assert first == second  # the copies answer alike


def test_serve_config_threshold_overrides_the_one_stored_with_the_run(tiny_run_dir: Path, tmp_path: Path) -> None:
    run_dir = shutil.copytree(tiny_run_dir, tmp_path / "run")
    set_threshold(run_dir, 0.0)  # stored: never "not sure"
    run = tl.load(run_dir)
    run.confidence.temperature = 100.0  # probabilities near 1/3, whatever the photo
    photo = _photos(run)[0]
    upload = {"files": (photo.name, photo.read_bytes(), "image/jpeg")}
    for threshold, unsure in ((None, False), (0.5, True), (0.0, False)):  # None: the run's own
        client = TestClient(create_app(run, ServeConfig(threshold=threshold)))
        expected = 0.0 if threshold is None else threshold
        assert client.get("/model").json()["unsure_below"] == expected
        body = client.post("/predict", files=upload).json()
        assert body["unsure_below"] == expected and body["results"][0]["in_distribution"] is True
        assert body["results"][0]["unsure"] is unsure, threshold
