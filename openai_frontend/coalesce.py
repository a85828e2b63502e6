"""Streamed frames joined into fewer socket writes (``--stream-coalesce-ms``).

Each ``send`` of a streamed frame goes down Starlette's send wrappers to uvicorn and one
socket write: on a fast stream most of the gateway's CPU per frame. With an interval
set, a frame that comes less than the interval after the previous write is held, and
goes out with the next one, in one write. A held frame waits at most the interval: if
no frame comes to carry it, a timer writes it. Nothing is held during the stream's
first interval (its opening frames, the first token among them) nor at its end, so
time to first token is unchanged and a stream ends at once.

The client sees the same bytes, the same events in the same order; only the TCP
segments differ. The cost is latency: a token may reach the client up to the interval
late. vLLM's ``--stream-interval`` makes the same trade in the engine, counted in
tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Protocol

from starlette.types import Message, Send


class Clock(Protocol):
    """What is used of the event loop: its time and its timers (a test's own clock)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle: ...


class _Done:
    """An awaitable that is already done: what the send of a held frame returns, so
    holding a frame costs no coroutine."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # a generator that returns at once


_DONE = _Done()


class CoalescingSend:
    """An ASGI ``send`` for one streamed response that writes its body frames at most
    once every ``interval`` seconds; everything else passes through in order."""

    def __init__(self, send: Send, interval: float, clock: Clock | None = None) -> None:
        self._send = send
        self._interval = interval
        self._loop: Clock = clock or asyncio.get_running_loop()
        self._held: list[bytes] = []
        self._write_after = 0.0  # until then a frame goes out at once
        self._opening_ends: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timed_write: asyncio.Future | None = None

    def __call__(self, message: Message) -> Awaitable[None]:
        if message["type"] != "http.response.body" or not message.get("more_body"):
            return self._in_order(message)
        self._held.append(message["body"])
        if self._loop.time() < self._write_after:
            if self._timer is None:
                self._timer = self._loop.call_at(self._write_after, self._write_on_timer)
            return _DONE
        return self._write_held()

    def _write_held(self) -> Awaitable[None]:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        body = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        now = self._loop.time()
        if self._opening_ends is None:
            self._opening_ends = now + self._interval
        elif now >= self._opening_ends:
            self._write_after = now + self._interval
        return self._send({"type": "http.response.body", "body": body, "more_body": True})

    def _write_on_timer(self) -> None:
        """No frame came to carry the held ones: they go out on their own."""
        self._timer = None
        if self._held:
            self._timed_write = asyncio.ensure_future(self._write_held())

    async def _in_order(self, message: Message) -> None:
        """The response's start, and its end after every frame still held."""
        if self._timed_write is not None:
            await self._timed_write
        if self._held:
            await self._write_held()
        await self._send(message)

    def close(self) -> None:
        """The response is over (ended, or cancelled): no timer may write after it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._timed_write is None:
            return
        if not self._timed_write.done():
            self._timed_write.cancel()
        elif not self._timed_write.cancelled():
            self._timed_write.exception()  # retrieved: no "never retrieved" log
