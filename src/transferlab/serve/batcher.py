"""Dynamic batching: requests that arrive within a few milliseconds of each other share one forward pass.

As Triton, Ray Serve and TorchServe do it: each job waits in one bounded FIFO queue; a worker thread per
model replica takes the oldest job and, once ``window_s`` has passed since it arrived (or ``max_batch``
images are waiting), every waiting job that fits in ``max_batch`` images, and hands them to ``run_batch``
as one call. A job marked ``alone`` (Grad-CAM hooks the network) runs in a pass of its own. The queue holds
at most ``max_queue`` images, counting those ``reserve``d for requests still being decoded; past that
``reserve`` and ``submit`` raise ``Overloaded`` at once instead of queueing.

Nothing here knows about models or HTTP: jobs are answered through ``concurrent.futures.Future``s, which
any thread or event loop can wait on (``asyncio.wrap_future``).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class Overloaded(Exception):
    """The queue is full: try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class Closed(Exception):
    """The batcher has stopped (the server is shutting down)."""


@dataclass(eq=False)
class Job:
    """One request's work: ``size`` images, answered through ``future``."""

    payload: Any  # what ``run_batch`` gets back for this job
    size: int = 1  # images in it, counted against ``max_batch`` and ``max_queue``
    alone: bool = False  # never shares a pass (e.g. Grad-CAM)
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """One queue, one worker thread per replica, each calling ``run_batch(replica, payloads)`` -> one answer per payload.

    Args:
        replicas: the objects a batch runs on (a model each); one worker thread per replica.
        run_batch: computes the answers of several jobs in one pass; an exception fails only the jobs it
            belongs to (a failed batch of several is retried one job at a time).
        window_s: how long the oldest waiting job waits for company before its batch starts.
        max_batch: images per pass (a single job larger than this runs alone).
        max_queue: images waiting (reserved or queued, not yet in a pass) beyond which ``reserve`` and ``submit``
            raise ``Overloaded``.
    """

    def __init__(self, replicas: Sequence[Any], run_batch: Callable[[Any, list[Any]], list[Any]], window_s: float, max_batch: int, max_queue: int) -> None:
        self.replicas, self.run_batch = list(replicas), run_batch
        self.window_s, self.max_batch, self.max_queue = window_s, max_batch, max_queue
        self.passes = 0  # calls of run_batch: fewer than jobs answered when batching works
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._reserved = 0  # images admitted by ``reserve`` and not yet submitted
        self._seconds_per_image: float | None = None  # running average, for Retry-After

    @property
    def waiting(self) -> int:
        """Images queued and not yet in a pass."""
        with self._cond:
            return sum(job.size for job in self._queue)

    def reserve(self, n: int) -> None:
        """Hold room for ``n`` images before the work of preparing them (decoding); ``submit(reserved=True)``
        or ``release`` gives it back.

        Raises:
            Overloaded: ``max_queue`` images are already waiting or reserved (one request alone is always let in).
            Closed: the batcher was closed.
        """
        with self._cond:
            self._check_room(n)
            self._reserved += n

    def release(self, n: int) -> None:
        """Give back room ``reserve``d for a job that will not be submitted."""
        with self._cond:
            self._reserved -= n

    def submit(self, job: Job, reserved: bool = False) -> Future:
        """Queue ``job`` and return its future; ``reserved``: its room was taken by ``reserve`` (and is used now).

        Raises:
            Overloaded: not reserved, and the queue already holds ``max_queue`` images.
            Closed: the batcher was closed.
        """
        with self._cond:
            if reserved:
                self._reserved -= job.size
                if self._closed:
                    raise Closed("the server is shutting down")
            else:
                self._check_room(job.size)
            if not self._threads:  # started on first use, in whichever process and loop serves
                self._threads = [threading.Thread(target=self._work, args=(r,), name=f"transferlab-batch-{i}", daemon=True) for i, r in enumerate(self.replicas)]
                for thread in self._threads:
                    thread.start()
            self._queue.append(job)
            self._cond.notify_all()
        return job.future

    def close(self) -> None:
        """Stop taking jobs; jobs still queued fail with ``Closed``, passes under way finish. Does not block."""
        with self._cond:
            self._closed = True
            left, self._queue = list(self._queue), deque()
            self._cond.notify_all()
        for job in left:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(Closed("the server is shutting down"))

    def _check_room(self, n: int) -> None:
        if self._closed:
            raise Closed("the server is shutting down")
        pending = sum(j.size for j in self._queue) + self._reserved
        if pending and pending + n > self.max_queue:
            raise Overloaded(self._retry_after(pending))

    def _retry_after(self, waiting: int) -> int:
        """Whole seconds until the queue has drained, by the passes measured so far (at least 1)."""
        per_image = self._seconds_per_image if self._seconds_per_image is not None else 1.0
        return max(1, math.ceil(waiting * per_image / max(1, len(self.replicas))))

    def _work(self, replica: Any) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            started = time.monotonic()
            self._answer(replica, jobs)
            per_image = (time.monotonic() - started) / sum(j.size for j in jobs)
            with self._cond:
                old = self._seconds_per_image
                self._seconds_per_image = per_image if old is None else 0.8 * old + 0.2 * per_image

    def _take(self) -> list[Job] | None:
        """Block until a batch is due; None once closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                if not self._queue:
                    self._cond.wait()
                    continue
                head = self._queue[0]
                due = head.arrived + self.window_s - time.monotonic()
                if not head.alone and due > 0 and sum(j.size for j in self._queue if not j.alone) < self.max_batch:
                    self._cond.wait(due)  # company may come; another worker may take the head meanwhile
                    continue
                jobs = self._pop(head)
                if jobs:
                    return jobs

    def _pop(self, head: Job) -> list[Job]:
        """The head alone, or the waiting jobs that share a pass with it (in arrival order); cancelled jobs dropped."""
        chosen = [head] if head.alone else []
        if not head.alone:
            images = 0
            for job in self._queue:
                if not job.alone and (not chosen or images + job.size <= self.max_batch):
                    chosen.append(job)
                    images += job.size
        for job in chosen:
            self._queue.remove(job)
        return [job for job in chosen if job.future.set_running_or_notify_cancel()]

    def _answer(self, replica: Any, jobs: list[Job]) -> None:
        """One pass for ``jobs``; if it fails, each job again on its own so that only the culprit fails."""
        with self._cond:
            self.passes += 1
        try:
            answers = self.run_batch(replica, [job.payload for job in jobs])
        except Exception as err:  # handed to the requests that wait on it, never swallowed
            if len(jobs) == 1:
                jobs[0].future.set_exception(err)
                return
            for job in jobs:
                self._answer(replica, [job])
            return
        for job, answer in zip(jobs, answers):
            job.future.set_result(answer)
