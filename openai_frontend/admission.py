"""Admission control: at most N sequences generate at once, at most M requests wait.

A request takes one slot per engine sequence it starts (``n`` choices of each prompt),
so ``n=128`` weighs what 128 single requests weigh. Past the queue a request gets a
429 with ``Retry-After`` at once, instead of piling up in the engine. Waiters are
served strictly in order of priority (lower first), then arrival (a heap of futures):
the request at the head is not overtaken by smaller ones behind it, so a large request
cannot starve behind small ones of its own priority. A request needing more slots than
exist could never run; it is refused with a 400 instead of waiting forever. A waiter
whose client leaves is removed without taking a slot (the caller cancels its wait when
the connection closes: see ``ServerState.generate``).

The wait is bounded twice: by ``--queue-timeout`` (a 503 with ``Retry-After``: the
server is overloaded, the request never started, so a retry is safe) and by the
request's own ``--request-timeout`` deadline, which counts from the moment it asked for
a slot (a 408, as when the deadline passes while generating).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import aclosing

from openai_frontend.errors import APIError

#: What a refused waiter is told to wait before retrying, in seconds.
RETRY_AFTER_S = 1


class Deadline:
    """``--request-timeout`` for one request: started when it asks for its slots, so the
    time spent in the queue counts, and shared by the queue wait and the generation."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = asyncio.get_running_loop().time() + seconds

    @classmethod
    def start(cls, seconds: float | None) -> Deadline | None:
        """A deadline ``seconds`` from now; None when there is no timeout."""
        return None if seconds is None else cls(seconds)

    def remaining(self) -> float:
        return max(self.at - asyncio.get_running_loop().time(), 0.0)

    def error(self) -> APIError:
        return deadline_error(self.seconds)


class Admission:
    def __init__(
        self, max_running: int, max_waiting: int | None, queue_timeout: float | None = None
    ) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        #: Seconds a request may wait in line (``--queue-timeout``); None: no bound.
        self.queue_timeout = queue_timeout
        #: Slots taken: sequences admitted and not yet finished.
        self.running = 0
        #: (priority, arrival number, slots, future): the heap's head is served next.
        self._waiters: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @property
    def waiting(self) -> int:
        """Requests in line (each may need several slots)."""
        return len(self._waiters)

    async def enter(
        self, slots: int = 1, priority: int = 0, deadline: Deadline | None = None
    ) -> None:
        """Take ``slots`` slots, waiting in line (by ``priority``, lower first, then
        arrival) if needed; 429 when the line is full, 503 past ``--queue-timeout``, the
        deadline's 408 when the request's own time runs out first."""
        if slots > self.max_running:
            raise APIError(
                f"This request would run {slots} sequences at once (n times the number of "
                f"prompts), but this server runs at most {self.max_running} "
                "(--max-concurrent-requests). Lower n or send fewer prompts.",
                param="n",
            )
        if not self._waiters and self.running + slots <= self.max_running:
            self.running += slots
            return
        if self.max_waiting is not None and len(self._waiters) >= self.max_waiting:
            raise APIError(
                "The server is busy: too many requests are waiting. Retry shortly.",
                status=429,
                code="too_many_requests",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        waiter = asyncio.get_running_loop().create_future()
        entry = (priority, next(self._arrivals), slots, waiter)
        heapq.heappush(self._waiters, entry)
        self._admit_waiters()  # ahead of everyone waiting, it may fit right now
        patience, out_of_time = self._patience(deadline)
        try:
            async with asyncio.timeout(patience):
                await waiter  # _admit_waiters() took the slots for us
        except (asyncio.CancelledError, TimeoutError) as exc:
            if waiter.done() and not waiter.cancelled():
                self.leave(slots)  # the slots arrived as we gave up: pass them on
            else:
                self._drop(entry)
                self._admit_waiters()  # those behind may fit now
            if isinstance(exc, TimeoutError):
                raise out_of_time from None
            raise

    def _patience(self, deadline: Deadline | None) -> tuple[float | None, APIError | None]:
        """How long a waiter may wait, and what it answers when that time is up: the
        queue timeout's 503, or the request deadline's 408 if that comes first."""
        if deadline is not None and (
            self.queue_timeout is None or deadline.remaining() < self.queue_timeout
        ):
            return deadline.remaining(), deadline.error()
        if self.queue_timeout is not None:
            return self.queue_timeout, queue_timeout_error(self.queue_timeout)
        return None, None

    def _drop(self, entry: tuple) -> None:
        """Take a waiter out of line (unless _admit_waiters already dropped it)."""
        if entry in self._waiters:
            self._waiters.remove(entry)
            heapq.heapify(self._waiters)

    def leave(self, slots: int = 1) -> None:
        self.running -= slots
        self._admit_waiters()

    def _admit_waiters(self) -> None:
        """Admit waiters from the head of the line while the head one fits."""
        while self._waiters:
            _, _, slots, waiter = self._waiters[0]
            if waiter.done():  # cancelled, its task not yet resumed: it takes nothing
                heapq.heappop(self._waiters)
                continue
            if self.running + slots > self.max_running:
                return
            heapq.heappop(self._waiters)
            self.running += slots
            waiter.set_result(None)

    async def hold(self, stream: AsyncIterator, slots: int = 1) -> AsyncIterator:
        """Pass ``stream`` through, giving the slots back however it ends."""
        try:
            async with aclosing(stream):
                async for item in stream:
                    yield item
        finally:
            self.leave(slots)


async def with_deadline(stream: AsyncIterator, deadline: Deadline) -> AsyncIterator:
    """End ``stream`` at ``deadline``: the engine request is aborted (the stream is
    closed) and the client gets a timeout error (a final ``data:`` event when
    streaming)."""
    async with aclosing(stream):
        while True:
            try:
                item = await asyncio.wait_for(anext(stream), deadline.remaining())
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise deadline.error() from None
            yield item


def deadline_error(seconds: float) -> APIError:
    """What a request stopped by ``--request-timeout`` answers."""
    return APIError(
        f"The request took longer than {seconds:g} s and was stopped.",
        status=408,
        code="request_timeout",
        type="timeout_error",
    )


def queue_timeout_error(seconds: float) -> APIError:
    """What a request that waited ``--queue-timeout`` for its slots answers: OpenAI's
    overloaded-server 503 (its 429 means the caller's own rate limit), which clients
    such as OpenAI's SDKs retry after ``Retry-After``."""
    return APIError(
        f"The server is overloaded: this request waited {seconds:g} s for a free slot "
        "(--queue-timeout) and was not started. Retry shortly.",
        status=503,
        code="queue_timeout",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
