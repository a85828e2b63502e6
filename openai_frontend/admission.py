"""Admission control: at most N requests generate at once, at most M wait, in order.

Past the queue a request gets a 429 with ``Retry-After`` at once, instead of piling up
in the engine. Waiters are served strictly in arrival order (a deque of futures), and a
waiter whose client leaves is removed without taking a slot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import aclosing

from openai_frontend.errors import APIError


class Admission:
    def __init__(self, max_running: int, max_waiting: int | None) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def enter(self) -> None:
        """Take a slot, waiting in line if needed; 429 when the line is full."""
        if self.running < self.max_running and not self._waiters:
            self.running += 1
            return
        if self.max_waiting is not None and len(self._waiters) >= self.max_waiting:
            raise APIError(
                "The server is busy: too many requests are waiting. Retry shortly.",
                status=429,
                code="too_many_requests",
                headers={"Retry-After": "1"},
            )
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # leave() hands its slot over: self.running is unchanged
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # the slot arrived as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.running -= 1

    async def hold(self, stream: AsyncIterator) -> AsyncIterator:
        """Pass ``stream`` through, giving the slot back however it ends."""
        try:
            async with aclosing(stream):
                async for item in stream:
                    yield item
        finally:
            self.leave()


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
                raise APIError(
                    f"The request took longer than {seconds:g} s and was stopped.",
                    status=408,
                    code="request_timeout",
                    type="timeout_error",
                ) from None
            yield item
