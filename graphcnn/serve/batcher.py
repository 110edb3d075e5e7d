"""Dynamic batching: requests arriving within `max_delay` of the first are gathered, up to
`max_batch` samples, into one native call (ServedModel.run), and the results go back to each.

With `adaptive` (the default) the delay is waited only while requests come concurrently: each
arrival counts the requests already in the server (queued, gathered or running), and while the
average of that count (ArrivalLoad) is below one half, a batch's first request runs at once.
A lone client, whose next request cannot come before its last is answered, then never waits
out a delay that no other request would fill.

The batcher owns a bounded queue (`queue_size` requests waiting; a full one refuses with
Overloaded, the server's 503) and `workers` threads for the native calls, so the event loop
never blocks on one: a batch is only gathered once a worker is free, so requests wait in the
queue (where backpressure sees them) rather than in the executor's. `close()` stops taking
requests, runs every queued one without waiting out the delay, and returns once all answered.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from graphcnn.errors import InputError

from .metrics import Metrics
from .model import ServedModel

logger = logging.getLogger("graphcnn.serve")


class Overloaded(Exception):
    """The queue is full or the server is shutting down: retry later (503, Retry-After)."""


@dataclass
class Request:
    feeds: dict[str, np.ndarray]
    samples: int
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)


class ArrivalLoad:
    """An exponential average of how many other requests each arrival finds in the server."""

    WEIGHT = 0.2  # of the newest arrival: about the last five count
    BUSY = 0.5    # from this average on, waiting for company pays

    def __init__(self) -> None:
        self.average = 0.0

    def observe(self, others: int) -> None:
        self.average += self.WEIGHT * (others - self.average)

    @property
    def busy(self) -> bool:
        return self.average >= self.BUSY


class Batcher:
    def __init__(self, model: ServedModel, metrics: Metrics, max_delay_s: float = 0.002,
                 queue_size: int = 256, workers: int = 1, max_batch: int | None = None,
                 adaptive: bool = True):
        if queue_size < 1 or workers < 1 or max_delay_s < 0:
            raise InputError(f"queue size ({queue_size}) and workers ({workers}) must be >= 1, "
                             f"the delay ({max_delay_s} s) >= 0")
        self.model, self.metrics = model, metrics
        self.max_batch = min(max_batch or model.max_batch, model.max_batch)
        self.max_delay_s, self.queue_size, self.workers = max_delay_s, queue_size, workers
        self._pending: deque[Request] = deque()
        self._forming: list[Request] = []  # the batch being gathered
        self._inflight = 0
        self._running = 0  # requests in the native calls under way
        self.adaptive, self.load = adaptive, ArrivalLoad()
        self._closing = False
        self._stop_warming = threading.Event()
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"serve-{model.name}")
        self._task: asyncio.Task | None = None
        metrics.queue_depth.labels(model.name).set_function(lambda: self.depth)

    @property
    def depth(self) -> int:
        """Requests not yet running whose callers still wait: queued, or in the batch being
        gathered."""
        return sum(not r.future.done() for r in self._pending) + \
            sum(not r.future.done() for r in self._forming)

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(self.workers)
        self._task = asyncio.create_task(self._gather_forever(), name="graphcnn-batcher")
        self._task.add_done_callback(self._gatherer_ended)

    def _gatherer_ended(self, task: asyncio.Task) -> None:
        """The gathering loop ends only when close() cancels it; should it die of a bug, every
        waiting request gets the error (a 500) and new ones a 503, rather than hanging."""
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        logger.error("the batcher stopped: %s: %s", type(error).__name__, error)
        self._closing = True
        for r in [*self._forming, *self._pending]:
            if not r.future.done():
                r.future.set_exception(error)
        self._forming, self._pending = [], deque()

    async def warm(self) -> None:
        """Compile every batch size before the server says it is ready (close() stops it
        after the compile under way, so a shutdown does not wait for every size)."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self.model.warm,
                                                         self._stop_warming)

    # ----- the request side -----------------------------------------------------------------
    def submit(self, feeds: dict[str, np.ndarray], samples: int) -> asyncio.Future:
        if self._closing:
            raise Overloaded("the server is shutting down")
        if len(self._pending) >= self.queue_size:
            self._purge()
        if len(self._pending) >= self.queue_size:
            raise Overloaded(f"the queue is full ({self.queue_size} requests waiting)")
        request = Request(feeds, samples, asyncio.get_running_loop().create_future())
        self.load.observe(len(self._pending) + len(self._forming) + self._running)
        self._pending.append(request)
        self._arrived.set()
        return request.future

    # ----- the batching side ----------------------------------------------------------------
    async def _next(self, deadline: float | None) -> bool:
        """Wait until a request is queued (True) or the deadline passes (False)."""
        loop = asyncio.get_running_loop()
        while not self._pending:
            self._arrived.clear()
            if deadline is None:
                await self._arrived.wait()
                continue
            left = deadline - loop.time()
            if left <= 0 or self._closing:
                return False
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:  # TimeoutError's own class before Python 3.11
                return False
        return True

    def _purge(self) -> None:
        """Drop queued requests whose callers gave up (timed out), so they hold no slots."""
        self._pending = deque(r for r in self._pending if not r.future.done())

    def _pop_live(self) -> Request | None:
        """The next queued request whose caller still waits (a timed-out one is dropped)."""
        while self._pending and self._pending[0].future.done():
            self._pending.popleft()
        return self._pending.popleft() if self._pending else None

    async def _gather_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()  # a free worker first: until then requests stay queued
            first = None
            while first is None:
                await self._next(None)
                first = self._pop_live()
            batch, total = self._forming, first.samples
            batch.append(first)
            deadline = loop.time() + self.delay_s()
            while total < self.max_batch and await self._next(deadline):
                head = self._pending[0]
                if head.future.done():
                    self._pending.popleft()
                    continue
                if total + head.samples > self.max_batch:
                    break  # it opens the next batch
                batch.append(self._pending.popleft())
                total += head.samples
            self._inflight += 1
            self._forming = []
            asyncio.create_task(self._run(batch))

    def delay_s(self) -> float:
        """How long a batch's first request waits for others (see the module's docstring)."""
        if self._closing or (self.adaptive and not self.load.busy):
            return 0.0
        return self.max_delay_s

    async def _run(self, batch: list[Request]) -> None:
        loop = asyncio.get_running_loop()
        self._running += len(batch)
        try:
            live = [r for r in batch if not r.future.done()]
            if not live:
                return
            try:
                results = await loop.run_in_executor(self._executor, self._call, live)
            except Exception as e:  # noqa: BLE001  (a failed compile or call answers all)
                for r in live:
                    if not r.future.done():
                        r.future.set_exception(e)
                return
            for r, out in zip(live, results):
                if not r.future.done():
                    r.future.set_result(out)
        finally:
            self._running -= len(batch)
            self._inflight -= 1
            self._slots.release()

    def _call(self, batch: list[Request]) -> list[dict[str, np.ndarray]]:
        """On a worker thread: one native call for the batch."""
        name = self.model.name
        total = sum(r.samples for r in batch)
        start = time.perf_counter()
        results = self.model.run([r.feeds for r in batch])
        self.metrics.inference.labels(name).observe(time.perf_counter() - start)
        self.metrics.batch_size.labels(name).observe(total)
        self.metrics.padded_size.labels(name).observe(self.model.size_for(total))
        return results

    # ----- shutdown -------------------------------------------------------------------------
    def begin_close(self) -> None:
        """Refuse new requests (503) and run the queued ones without waiting out the delay.
        On the event loop's thread (a signal handler the loop runs, or close())."""
        self._closing = True
        self._stop_warming.set()
        if self._task is not None:
            self._arrived.set()

    async def close(self) -> None:
        """Refuse new requests, answer every queued and running one, then stop."""
        self.begin_close()
        while self.depth or self._inflight:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)
