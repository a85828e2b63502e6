"""Admission queue order, 429 past the queue, cancellation, and the request deadline."""

from __future__ import annotations

import asyncio

import pytest

from openai_frontend.admission import Admission, with_deadline
from openai_frontend.errors import APIError


def test_waiters_are_served_in_arrival_order_and_overflow_is_429():
    async def scenario() -> tuple[list[int], APIError]:
        gate = Admission(max_running=1, max_waiting=3)
        order: list[int] = []
        await gate.enter()  # the one running request

        async def request(i: int) -> None:
            await gate.enter()
            order.append(i)
            await asyncio.sleep(0)
            gate.leave()

        tasks = []
        for i in range(3):
            tasks.append(asyncio.create_task(request(i)))
            await asyncio.sleep(0)  # arrive one after another
        assert gate.waiting == 3
        with pytest.raises(APIError) as overflow:
            await gate.enter()
        gate.leave()
        await asyncio.gather(*tasks)
        assert (gate.running, gate.waiting) == (0, 0)
        return order, overflow.value

    order, overflow = asyncio.run(scenario())
    assert order == [0, 1, 2]
    assert overflow.status == 429
    assert overflow.headers == {"Retry-After": "1"}


def test_a_waiter_that_leaves_takes_no_slot():
    async def scenario() -> Admission:
        gate = Admission(max_running=1, max_waiting=5)
        await gate.enter()
        waiter = asyncio.create_task(gate.enter())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.leave()
        return gate

    gate = asyncio.run(scenario())
    assert (gate.running, gate.waiting) == (0, 0)


def test_deadline_stops_and_closes_the_stream():
    closed = []

    async def slow():
        try:
            for i in range(100):
                await asyncio.sleep(0.05)
                yield i
        finally:
            closed.append(True)

    async def scenario() -> list[int]:
        got = []
        with pytest.raises(APIError) as caught:
            async for item in with_deadline(slow(), 0.2):
                got.append(item)
        assert caught.value.status == 408
        return got

    got = asyncio.run(scenario())
    assert 1 <= len(got) < 10
    assert closed == [True], "the engine side of the stream is closed (aborted)"


def test_hold_gives_the_slot_back_when_closed_early():
    async def scenario() -> Admission:
        gate = Admission(max_running=1, max_waiting=0)

        async def endless():
            while True:
                await asyncio.sleep(0)
                yield 1

        await gate.enter()
        held = gate.hold(endless())
        await anext(held)
        await held.aclose()
        return gate

    assert asyncio.run(scenario()).running == 0
