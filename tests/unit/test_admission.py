"""Admission queue order, slots per sequence, 429 past the queue, cancellation, and the
request deadline."""

from __future__ import annotations

import asyncio

import pytest

from openai_frontend.admission import Admission, Deadline, with_deadline
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


def _served_order(arrivals: list[tuple[str, int, int]], max_running: int = 2) -> list[str]:
    """Who gets a slot, in order, when ``(name, slots, priority)`` queue one after another
    behind requests holding every slot, which then leave."""

    async def scenario() -> list[str]:
        gate = Admission(max_running=max_running, max_waiting=None)
        await gate.enter(max_running)
        order: list[str] = []

        async def request(name: str, slots: int, priority: int) -> None:
            await gate.enter(slots, priority)
            order.append(name)
            await asyncio.sleep(0)
            gate.leave(slots)

        tasks = []
        for arrival in arrivals:
            tasks.append(asyncio.create_task(request(*arrival)))
            await asyncio.sleep(0)
        gate.leave(max_running)
        await asyncio.gather(*tasks)
        assert (gate.running, gate.waiting) == (0, 0)
        return order

    return asyncio.run(scenario())


def test_waiters_are_served_by_priority_then_arrival():
    arrivals = [("low-1", 1, 5), ("low-2", 1, 5), ("default", 1, 0), ("high", 1, -5)]
    assert _served_order(arrivals, max_running=1) == ["high", "default", "low-1", "low-2"]


def test_a_large_head_is_not_overtaken_by_smaller_ones_of_its_priority():
    arrivals = [("large", 2, 0), ("small", 1, 0), ("urgent", 1, -1)]
    assert _served_order(arrivals) == ["urgent", "large", "small"]


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
            async for item in with_deadline(slow(), Deadline(0.2)):
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


def test_a_request_takes_one_slot_per_sequence():
    async def scenario() -> list[str]:
        gate = Admission(max_running=4, max_waiting=None)
        events: list[str] = []
        await gate.enter(3)  # a request with n=3
        assert gate.running == 3

        async def request(name: str, slots: int) -> None:
            await gate.enter(slots)
            events.append(f"{name} in")

        two = asyncio.create_task(request("two", 2))
        await asyncio.sleep(0)
        assert (gate.running, gate.waiting) == (3, 1), "3 + 2 sequences exceed 4 slots"
        one = asyncio.create_task(request("one", 1))
        await asyncio.sleep(0)
        assert gate.waiting == 2, "a smaller request does not overtake the head of the line"
        gate.leave(3)
        await asyncio.gather(two, one)
        assert gate.running == 3
        gate.leave(2)
        gate.leave(1)
        assert (gate.running, gate.waiting) == (0, 0)
        return events

    assert asyncio.run(scenario()) == ["two in", "one in"]


def test_more_sequences_than_slots_is_a_400_naming_the_limit_not_a_deadlock():
    async def scenario() -> APIError:
        gate = Admission(max_running=4, max_waiting=None)
        with pytest.raises(APIError) as refused:
            await asyncio.wait_for(gate.enter(5), timeout=5)
        assert (gate.running, gate.waiting) == (0, 0)
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.status == 400 and refused.param == "n"
    assert "--max-concurrent-requests" in refused.message and "4" in refused.message


def test_a_large_waiter_that_leaves_lets_those_behind_it_in():
    async def scenario() -> Admission:
        gate = Admission(max_running=4, max_waiting=None)
        await gate.enter(2)
        large = asyncio.create_task(gate.enter(4))
        await asyncio.sleep(0)
        small = asyncio.create_task(gate.enter(2))
        await asyncio.sleep(0)
        assert gate.waiting == 2
        large.cancel()
        with pytest.raises(asyncio.CancelledError):
            await large
        await asyncio.wait_for(small, timeout=5)
        return gate

    gate = asyncio.run(scenario())
    assert (gate.running, gate.waiting) == (4, 0)


def test_a_prioritised_waiter_that_leaves_lets_the_next_one_in():
    async def scenario() -> tuple[Admission, list[str]]:
        gate = Admission(max_running=1, max_waiting=5)
        await gate.enter()
        order: list[str] = []

        async def request(name: str, priority: int) -> None:
            await gate.enter(1, priority)
            order.append(name)

        low = asyncio.create_task(request("low", 5))
        await asyncio.sleep(0)
        high = asyncio.create_task(request("high", -5))
        await asyncio.sleep(0)
        high.cancel()
        with pytest.raises(asyncio.CancelledError):
            await high
        assert gate.waiting == 1
        gate.leave()
        await low
        gate.leave()
        return gate, order

    gate, order = asyncio.run(scenario())
    assert order == ["low"]
    assert (gate.running, gate.waiting) == (0, 0)


def _timed_out_waiter(gate: Admission, deadline_s: float | None) -> tuple[APIError, Admission]:
    """A waiter behind a slot that is never given back, with the request deadline
    ``deadline_s``: what it answers once its time in line is up, and the gate after."""

    async def scenario() -> tuple[APIError, Admission]:
        await gate.enter()  # held for good: only a timeout ends the wait below
        behind = asyncio.create_task(gate.enter(deadline=Deadline.start(deadline_s)))
        await asyncio.sleep(0)
        assert gate.waiting == 1
        with pytest.raises(APIError) as caught:
            await behind
        return caught.value, gate

    return asyncio.run(scenario())


def test_the_queue_timeout_answers_503_with_retry_after_and_frees_the_place():
    error, gate = _timed_out_waiter(Admission(1, None, queue_timeout=0.05), deadline_s=None)
    assert (error.status, error.code) == (503, "queue_timeout")
    assert error.headers == {"Retry-After": "1"} and "--queue-timeout" in error.message
    assert (gate.running, gate.waiting) == (1, 0), "the waiter left the line, took no slot"


def test_the_request_timeout_bounds_the_wait_in_line():
    """Before, the deadline started only once the request held its slot: a request could
    wait in line forever under --request-timeout."""
    error, gate = _timed_out_waiter(Admission(1, None), deadline_s=0.05)
    assert (error.status, error.code) == (408, "request_timeout")
    assert (gate.running, gate.waiting) == (1, 0)


def test_the_earlier_of_the_two_bounds_answers():
    error, _ = _timed_out_waiter(Admission(1, None, queue_timeout=60), deadline_s=0.05)
    assert error.status == 408
    error, _ = _timed_out_waiter(Admission(1, None, queue_timeout=0.05), deadline_s=60)
    assert error.status == 503
