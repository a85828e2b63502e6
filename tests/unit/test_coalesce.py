"""``--stream-coalesce-ms``: which frames one write carries, on a clock of the test's own
(no real time passes, so nothing here races the machine's speed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from openai_frontend.coalesce import CoalescingSend

INTERVAL = 0.05
START = {"type": "http.response.start", "status": 200, "headers": []}
END = {"type": "http.response.body", "body": b"", "more_body": False}


def frame(text: str) -> dict:
    return {"type": "http.response.body", "body": text.encode(), "more_body": True}


@dataclass
class Timer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Clock:
    now: float = 100.0
    timers: list[Timer] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        self.timers.append(Timer(when, callback))
        return self.timers[-1]

    async def advance(self, seconds: float, fire: bool = True) -> None:
        self.now += seconds
        for timer in [t for t in self.timers if fire and not t.cancelled and t.when <= self.now]:
            self.timers.remove(timer)
            timer.callback()
        await asyncio.sleep(0)  # a write a timer started runs


class Wire:
    """The downstream send: every message it was given, in order."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def __call__(self, message: dict) -> None:
        self.messages.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]


def test_frames_are_held_within_an_interval_and_joined_in_order():
    async def scenario() -> None:
        wire, clock = Wire(), Clock()
        send = CoalescingSend(wire, INTERVAL, clock)
        await send(START)
        await send(frame("a"))  # the opening interval: each frame at once
        await clock.advance(0.01)
        await send(frame("b"))
        await clock.advance(INTERVAL)
        await send(frame("c"))  # past the opening: written, and an interval starts
        await send(frame("d"))
        await send(frame("e"))
        assert wire.bodies() == [b"a", b"b", b"c"]
        await clock.advance(0.02, fire=False)
        await send(frame("f"))  # still within the interval: held too
        assert wire.bodies() == [b"a", b"b", b"c"]
        await clock.advance(INTERVAL)  # nothing came to carry them: the timer writes
        assert wire.bodies() == [b"a", b"b", b"c", b"def"]
        await send(frame("g"))
        await send(END)  # the end writes what is held first
        assert wire.bodies() == [b"a", b"b", b"c", b"def", b"g", b""]
        assert wire.messages[0] is START and wire.messages[-1] is END
        assert [m.get("more_body") for m in wire.messages[1:]] == [True] * 5 + [False]

    asyncio.run(scenario())


async def _c_held() -> tuple[Wire, Clock, CoalescingSend]:
    """ "a" in the opening, "b" written past it, "c" held within b's interval."""
    wire, clock = Wire(), Clock()
    send = CoalescingSend(wire, INTERVAL, clock)
    await send(frame("a"))
    await clock.advance(INTERVAL)
    await send(frame("b"))
    await send(frame("c"))
    return wire, clock, send


def test_a_frame_after_the_interval_carries_the_held_ones_and_stops_the_timer():
    async def scenario() -> None:
        wire, clock, send = await _c_held()
        (timer,) = clock.timers
        await clock.advance(INTERVAL, fire=False)
        await send(frame("d"))
        assert wire.bodies() == [b"a", b"b", b"cd"]
        assert timer.cancelled

    asyncio.run(scenario())


def test_nothing_is_written_after_close():
    async def scenario() -> None:
        wire, clock, send = await _c_held()
        send.close()  # the response was cancelled (the client left)
        await clock.advance(10 * INTERVAL)
        assert wire.bodies() == [b"a", b"b"]

    asyncio.run(scenario())
