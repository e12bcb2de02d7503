"""Serving under load: concurrent requests share forward passes (dynamic batching) and answer exactly as one
request alone does; a full queue answers 503 with Retry-After; a bad upload fails only its own request;
stopping the server with requests in flight does not hang. Counters and gates, never wall-clock timings."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import transferlab as tl

pytest.importorskip("fastapi", reason="the [serve] extra (fastapi, uvicorn) is not installed")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from transferlab.errors import ConfigError  # noqa: E402
from transferlab.serve import ServeConfig, create_app  # noqa: E402
from transferlab.serve.batcher import Batcher, Closed, Job, Overloaded  # noqa: E402
from transferlab.serve.predictor import Predictor  # noqa: E402

LONG_WINDOW = 60_000.0  # ms: a batch starts only when max_batch images wait, so the test decides what shares a pass


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


def photos(run: tl.Run, n: int) -> list[Path]:
    files = sorted(Path(run.meta["data"]["root"]).glob("*/*.jpg"))
    return [f for f in files if f.name != "broken.jpg"][:n]


def upload(path: Path) -> dict:
    return {"files": (path.name, path.read_bytes(), "image/jpeg")}


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Holds every forward pass until set (installed before the predictor is built)."""
    opened = threading.Event()
    real = Predictor._answer

    def held(self, model, jobs):
        assert opened.wait(60), "the gate was never opened"
        return real(self, model, jobs)

    monkeypatch.setattr(Predictor, "_answer", held)
    yield opened
    opened.set()


# -- the batcher alone: a generic queue and worker threads --------------------------------------------
def test_a_failing_pass_fails_only_the_job_that_caused_it() -> None:
    def run_batch(replica, payloads):
        if "bad" in payloads:
            raise ValueError("bad payload")
        return [p.upper() for p in payloads]

    batcher = Batcher(["replica"], run_batch, window_s=60, max_batch=3, max_queue=10)
    futures = [batcher.submit(Job(p)) for p in ("a", "bad", "b")]  # the third fills the batch: one pass
    assert futures[0].result(60) == "A" and futures[2].result(60) == "B"
    with pytest.raises(ValueError, match="bad payload"):
        futures[1].result(60)
    assert batcher.passes == 4  # the shared pass, then each job again alone
    batcher.close()


def test_close_fails_queued_jobs_and_returns_while_a_pass_is_under_way() -> None:
    inside, release = threading.Event(), threading.Event()

    def run_batch(replica, payloads):
        inside.set()
        release.wait(60)
        return payloads

    batcher = Batcher(["replica"], run_batch, window_s=0, max_batch=1, max_queue=10)
    running = batcher.submit(Job("first"))
    assert inside.wait(60)
    queued = batcher.submit(Job("second"))
    batcher.close()  # must not wait for the pass
    with pytest.raises(Closed):
        queued.result(60)
    with pytest.raises(Closed):
        batcher.submit(Job("late"))
    release.set()
    assert running.result(60) == "first"


def test_a_full_queue_refuses_with_a_retry_delay() -> None:
    release = threading.Event()
    batcher = Batcher(["replica"], lambda r, p: (release.wait(60), p)[1], window_s=0, max_batch=1, max_queue=2)
    first = batcher.submit(Job(1))
    wait_until(lambda: batcher.waiting == 0, "the first job to enter its pass")
    batcher.submit(Job(2))
    batcher.submit(Job(3))
    with pytest.raises(Overloaded) as refused:
        batcher.submit(Job(4))
    assert refused.value.retry_after >= 1
    release.set()
    assert first.result(60) == 1
    batcher.close()


def test_room_reserved_for_requests_being_decoded_counts_against_the_queue() -> None:
    batcher = Batcher(["replica"], lambda r, p: p, window_s=0, max_batch=1, max_queue=2)
    batcher.reserve(2)  # two requests still decoding
    with pytest.raises(Overloaded):
        batcher.reserve(1)
    batcher.release(1)  # one upload was bad: its room is free again
    assert batcher.submit(Job("decoded"), reserved=True).result(60) == "decoded"
    batcher.reserve(1)
    batcher.close()


# -- the service -------------------------------------------------------------------------------------
def test_concurrent_requests_share_passes_and_answer_as_one_request_alone(tiny_run_dir: Path) -> None:
    run = tl.load(tiny_run_dir)
    files = photos(run, 4)
    views = [run.model.preprocess.to_uint8(Image.open(f).convert("RGB")) for f in files]
    ks = [3, 1, 2, 3]  # different k in one pass: each request gets its own
    alone = Predictor(run, ServeConfig(max_batch=1))
    together = Predictor(run, ServeConfig(batch_window_ms=LONG_WINDOW, max_batch=len(files)))

    async def one_at_a_time():
        return [await alone.infer([v], k, False) for v, k in zip(views, ks)]

    async def at_once():
        return await asyncio.gather(*(together.infer([v], k, False) for v, k in zip(views, ks)))

    want, got = asyncio.run(one_at_a_time()), asyncio.run(at_once())
    assert alone.batcher.passes == len(files) and together.batcher.passes == 1
    for g, w, k in zip(got, want, ks):
        assert len(g[0]["top"]) == k
        assert [t["label"] for t in g[0]["top"]] == [t["label"] for t in w[0]["top"]] and g[0]["label"] == w[0]["label"]
        assert [t["prob"] for t in g[0]["top"]] == pytest.approx([t["prob"] for t in w[0]["top"]], abs=1e-5)
        assert g[0]["in_distribution"] == w[0]["in_distribution"] and g[0]["unsure"] == w[0]["unsure"]
    library = run.predict([v.float() / 255 for v in views], k=3, precision=together.runtime.precision)  # predict's own path, same views
    assert [g[0]["top"][0]["label"] for g in got] == [p.closest for p in library]
    alone.close()
    together.close()


def test_concurrent_http_requests_are_answered_in_one_pass(tiny_run_dir: Path) -> None:
    run = tl.load(tiny_run_dir)
    files = photos(run, 3)
    app = create_app(run, ServeConfig(batch_window_ms=LONG_WINDOW, max_batch=len(files)))
    with TestClient(app) as client, ThreadPoolExecutor(len(files)) as pool:
        replies = list(pool.map(lambda f: client.post("/predict?k=2", files=upload(f)), files))
    assert [r.status_code for r in replies] == [200] * len(files)
    assert app.state.predictor.batcher.passes == 1
    want = run.predict(files, k=2, precision=app.state.predictor.runtime.precision)
    for reply, expected in zip(replies, want):
        got = reply.json()["results"][0]
        assert [t["label"] for t in got["top"]] == [t["label"] for t in expected["top"]]
        assert got["top"][0]["prob"] == pytest.approx(expected["top"][0]["prob"], abs=1e-4)


def test_a_full_queue_answers_503_with_retry_after_and_loses_nothing(tiny_run_dir: Path, gate: threading.Event) -> None:
    run = tl.load(tiny_run_dir)
    files = photos(run, 3)
    app = create_app(run, ServeConfig(batch_window_ms=0, max_batch=1, max_queue=2))
    batcher = app.state.predictor.batcher
    with TestClient(app) as client, ThreadPoolExecutor(3) as pool:
        first = pool.submit(client.post, "/predict", files=upload(files[0]))
        wait_until(lambda: batcher.passes == 1, "the first request to enter its (held) pass")
        queued = [pool.submit(client.post, "/predict", files=upload(f)) for f in files[1:]]
        wait_until(lambda: batcher.waiting == 2, "two requests to queue behind it")
        refused = client.post("/predict", files=upload(files[0]))
        gate.set()
        answered = [f.result(60) for f in [first, *queued]]
    assert refused.status_code == 503
    assert refused.headers["retry-after"].isdigit() and int(refused.headers["retry-after"]) >= 1
    message = refused.json()["error"]
    assert "busy" in message and "retry" in message and "\n" not in message
    assert [r.status_code for r in answered] == [200, 200, 200]  # admitted requests are all answered


def _truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def test_a_bad_upload_among_batched_requests_fails_only_its_own(tiny_run_dir: Path, gate: threading.Event) -> None:
    run = tl.load(tiny_run_dir)
    files = photos(run, 4)
    app = create_app(run, ServeConfig(batch_window_ms=LONG_WINDOW, max_batch=2))
    batcher = app.state.predictor.batcher
    with TestClient(app) as client, ThreadPoolExecutor(4) as pool:
        held = [pool.submit(client.post, "/predict", files=upload(f)) for f in files[:2]]  # fill the first pass (held)
        wait_until(lambda: batcher.passes == 1, "the first pass")
        later = [pool.submit(client.post, "/predict", files=upload(files[2]))]
        wait_until(lambda: batcher.waiting == 1, "the third request to queue")
        bad = client.post("/predict", files={"files": ("cut.jpg", _truncated_jpeg(), "image/jpeg")})
        later.append(pool.submit(client.post, "/predict", files=upload(files[3])))  # the bad one took no place: this one fills the pass
        gate.set()
        good = [f.result(60) for f in [*held, *later]]
    assert bad.status_code == 415 and "could not be decoded" in bad.json()["error"]
    assert [r.status_code for r in good] == [200] * 4
    assert [r.json()["results"][0]["filename"] for r in good] == [f.name for f in files]
    assert batcher.passes == 2


def test_stopping_the_server_with_requests_in_flight_does_not_hang(tiny_run_dir: Path, gate: threading.Event) -> None:
    import uvicorn

    run = tl.load(tiny_run_dir)
    files = photos(run, 3)
    app = create_app(run, ServeConfig(batch_window_ms=0, max_batch=1))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "uvicorn to start")
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    batcher = app.state.predictor.batcher
    with ThreadPoolExecutor(len(files)) as pool:
        replies: list[Future] = [pool.submit(httpx.post, f"{url}/predict", files=upload(f), timeout=120) for f in files]
        wait_until(lambda: batcher.passes == 1 and batcher.waiting == 2, "one request in a pass, two queued")
        server.should_exit = True  # what SIGTERM does: stop accepting, finish what is in flight, then shut down
        gate.set()
        thread.join(60)
        assert not thread.is_alive(), "the server did not stop"
        statuses = [f.result(60).status_code for f in replies]
    assert statuses == [200, 200, 200]  # in flight at the stop: answered, not dropped
    assert batcher._closed  # the lifespan closed the queue: a later request would get 503


def test_serve_config_refuses_a_non_positive_queue() -> None:
    with pytest.raises(ConfigError, match="max_queue >= 1, got 0"):
        ServeConfig(max_queue=0)


def test_serving_leaves_a_core_to_the_event_loop_and_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from transferlab.serve import app

    monkeypatch.setattr(app, "cpu_count", lambda: 2)
    assert app.serving_threads(ServeConfig()) == 1 and app.serving_threads(ServeConfig(workers=2)) == 1
    monkeypatch.setattr(app, "cpu_count", lambda: 16)
    assert app.serving_threads(ServeConfig()) == 15 and app.serving_threads(ServeConfig(workers=2)) == 7
    assert app.serving_threads(ServeConfig(threads=4)) == 4  # as asked


def test_cli_defaults_are_the_config_defaults() -> None:
    import inspect

    from transferlab.cli import serve

    params = inspect.signature(serve).parameters
    for name in ("batch_window_ms", "max_batch", "max_queue", "workers", "max_files"):
        assert params[name].default == getattr(ServeConfig(), name), name
