"""Request priority through a real server of its own (one slot, the priority policy):
the admission queue serves a high-priority request queued last before the earlier
low-priority ones, and vLLM accepts the priority it is handed (it refuses any non-zero
priority unless started with the priority policy, so a 200 shows the flag reached it)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from servers import default_model_server
from test_access import _sample

from openai_frontend.default_model import MODEL_NAME

pytestmark = pytest.mark.engine

WAITING = "openai_frontend_requests_waiting"
ADMITTED = "openai_frontend_requests_admitted"
#: Long enough that the queue is still full when the last request arrives.
BLOCKER_TOKENS = 160


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> str:
    log = tmp_path_factory.mktemp("priority") / "server.log"
    flags = ("--max-concurrent-requests", "1", "--scheduling-policy", "priority")
    with default_model_server(log, *flags) as running:
        yield running.base_url


def _body(max_tokens: int, **fields: object) -> dict:
    return {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "Count to one hundred."}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": True,
        **fields,
    }


async def _started_at(client: httpx.AsyncClient, body: dict) -> float:
    """When the response began: the server answers only once the request held its slot
    and the engine gave its first token (openai_frontend.generation.primed). Read to
    the end, so the slot is given back."""
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        started = time.monotonic()
        assert response.status_code == 200, await response.aread()
        async for _ in response.aiter_lines():
            pass
    return started


async def _wait_for(client: httpx.AsyncClient, gauge: str, count: int) -> None:
    """Until /metrics shows the admission ``gauge`` at ``count``."""
    for _ in range(1200):
        if _sample((await client.get("/metrics")).text, gauge) == count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{gauge} never reached {count}")


def test_a_high_priority_request_queued_last_starts_before_low_priority_ones(one_slot):
    async def scenario() -> dict[str, float]:
        async with httpx.AsyncClient(base_url=one_slot, timeout=300) as client:
            started = {}

            async def send(name: str, body: dict) -> None:
                started[name] = await _started_at(client, body)

            tasks = [asyncio.create_task(send("blocker", _body(BLOCKER_TOKENS)))]
            await _wait_for(client, ADMITTED, 1)
            arrivals = [
                ("low-1", {"priority": 5}),
                ("low-2", {"priority": 5}),
                ("flex", {"service_tier": "flex"}),
                ("high", {"priority": -5}),
            ]
            for waiting, (name, fields) in enumerate(arrivals, start=1):
                tasks.append(asyncio.create_task(send(name, _body(4, **fields))))
                await _wait_for(client, WAITING, waiting)
            await asyncio.gather(*tasks)
            return started

    started = asyncio.run(scenario())
    order = sorted(started, key=started.get)
    assert order == ["blocker", "high", "flex", "low-1", "low-2"], started
