"""Fan-out and merge of choices, driven by plain async generators (no engine)."""

from __future__ import annotations

import asyncio

import pytest

from engines.base import SamplingParams
from openai_frontend.generation import _merge, choice_requests


def test_choice_indices_and_seeds():
    requests = choice_requests("r", [[1], [2]], SamplingParams(max_tokens=1, seed=10), 2, None)
    assert [r.request_id for r in requests] == ["r-0", "r-1", "r-2", "r-3"]
    assert [r.prompt_token_ids for r in requests] == [[1], [1], [2], [2]]
    assert [r.sampling.seed for r in requests] == [10, 11, 12, 13]


def test_merge_interleaves_and_closes_every_stream():
    closed = []

    async def stream(name: str, count: int, pause: float):
        try:
            for i in range(count):
                await asyncio.sleep(pause)
                yield name, i
        finally:
            closed.append(name)

    async def run():
        items = [item async for item in _merge([stream("a", 3, 0.001), stream("b", 2, 0.0015)])]
        return items

    items = asyncio.run(run())
    assert sorted(items) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    assert sorted(closed) == ["a", "b"]


def test_closing_merge_early_closes_the_others():
    closed = []

    async def endless(name: str):
        try:
            while True:
                await asyncio.sleep(0.001)
                yield name
        finally:
            closed.append(name)

    async def run():
        merged = _merge([endless("a"), endless("b")])
        await anext(merged)
        await merged.aclose()

    asyncio.run(run())
    assert sorted(closed) == ["a", "b"]


class _UnloadedLease:
    """A lease whose adapter was unloaded between lookup and the first step."""

    released = False

    def acquire(self) -> None:
        from lora.registry import AdapterNotFound

        raise AdapterNotFound("adapter 'gone' was unloaded")

    async def release(self) -> None:
        self.released = True


def test_an_adapter_unloaded_before_the_first_step_is_a_404_and_nothing_is_released():
    from openai_frontend.errors import APIError
    from openai_frontend.generation import primed, run_choices

    lease = _UnloadedLease()
    requests = choice_requests("r", [[1]], SamplingParams(max_tokens=1), 1, None)

    async def start():
        return await primed(run_choices(engine=None, requests=requests, lease=lease))

    with pytest.raises(APIError) as refused:
        asyncio.run(start())
    assert refused.value.status == 404 and refused.value.code == "model_not_found"
    assert lease.released is False
