"""Admission control: at most N sequences generate at once, at most M requests wait.

A request takes one slot per engine sequence it starts (``n`` choices of each prompt),
so ``n=128`` weighs what 128 single requests weigh. Past the queue a request gets a
429 with ``Retry-After`` at once, instead of piling up in the engine. Waiters are
served strictly in order of priority (lower first), then arrival (a heap of futures):
the request at the head is not overtaken by smaller ones behind it, so a large request
cannot starve behind small ones of its own priority. A request needing more slots than
exist could never run; it is refused with a 400 instead of waiting forever. A waiter
whose client leaves is removed without taking a slot.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import aclosing

from openai_frontend.errors import APIError


class Admission:
    def __init__(self, max_running: int, max_waiting: int | None) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        #: Slots taken: sequences admitted and not yet finished.
        self.running = 0
        #: (priority, arrival number, slots, future): the heap's head is served next.
        self._waiters: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @property
    def waiting(self) -> int:
        """Requests in line (each may need several slots)."""
        return len(self._waiters)

    async def enter(self, slots: int = 1, priority: int = 0) -> None:
        """Take ``slots`` slots, waiting in line (by ``priority``, lower first, then
        arrival) if needed; 429 when the line is full."""
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
                headers={"Retry-After": "1"},
            )
        waiter = asyncio.get_running_loop().create_future()
        entry = (priority, next(self._arrivals), slots, waiter)
        heapq.heappush(self._waiters, entry)
        self._admit_waiters()  # ahead of everyone waiting, it may fit right now
        try:
            await waiter  # _admit_waiters() took the slots for us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave(slots)  # the slots arrived as we were cancelled: pass them on
            else:
                self._drop(entry)
                self._admit_waiters()  # those behind may fit now
            raise

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


async def with_deadline(stream: AsyncIterator, seconds: float) -> AsyncIterator:
    """End ``stream`` after ``seconds`` in all: the engine request is aborted (the stream
    is closed) and the client gets a timeout error (a final ``data:`` event when
    streaming)."""
    deadline = asyncio.get_running_loop().time() + seconds
    async with aclosing(stream):
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                item = await asyncio.wait_for(anext(stream), max(remaining, 0))
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise deadline_error(seconds) from None
            yield item


def deadline_error(seconds: float) -> APIError:
    """What a request stopped by ``--request-timeout`` answers."""
    return APIError(
        f"The request took longer than {seconds:g} s and was stopped.",
        status=408,
        code="request_timeout",
        type="timeout_error",
    )
