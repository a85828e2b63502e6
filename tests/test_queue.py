"""Requests that wait (for an admission slot, or in the engine for their prefill) through
a real server of their own: a client that leaves meanwhile takes its request with it,
and ``--queue-timeout`` answers OpenAI's overloaded 503 with ``Retry-After``.

No clock is raced: one "blocker" stream holds the engine for the whole context window
(``ignore_eos``), and every wait below ends either when the server shows what is
expected or, failing the test, when the blocker has ended.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest
from conftest import ADMIN_HEADERS, ADMIN_KEY
from servers import default_model_server
from test_access import _sample

from openai_frontend.default_model import MODEL_NAME

pytestmark = pytest.mark.engine

WAITING = "openai_frontend_requests_waiting"
ADMITTED = "openai_frontend_requests_admitted"
QUEUE_TIMEOUT_S = 1.0
MESSAGES = [{"role": "user", "content": "Count to one hundred."}]


class Blocker:
    """A stream as long as the context allows (no ``max_tokens``), read in the
    background; closing it aborts it in the engine."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.lines = 0
        body = {"model": MODEL_NAME, "messages": MESSAGES, "ignore_eos": True, "stream": True}
        self.task = asyncio.create_task(self._read(client, body))

    async def _read(self, client: httpx.AsyncClient, body: dict) -> None:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200, await response.aread()
            async for _ in response.aiter_lines():
                self.lines += 1

    async def until(self, what: str, holds: Callable[[], Awaitable[bool]]) -> None:
        """Poll ``holds`` until true; the blocker ending first fails the test."""
        while not await holds():
            if self.task.done():
                self.task.result()  # its own failure, if it had one
                raise AssertionError(f"the blocker ended before {what}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _gauges(client: httpx.AsyncClient) -> dict[str, float]:
    metrics = (await client.get("/metrics")).text
    view = (await client.get("/health/ready", headers=ADMIN_HEADERS)).json()
    return {
        "waiting": _sample(metrics, WAITING),
        "admitted": _sample(metrics, ADMITTED),
        "in_engine": view["engine_unfinished_requests"],
        "closed": _closed_responses(metrics),
    }


def showing(client: httpx.AsyncClient, **expected: float) -> Callable[[], Awaitable[bool]]:
    """Whether the server's gauges (``_gauges``) show ``expected`` now."""

    async def shows() -> bool:
        gauges = await _gauges(client)
        return all(gauges[key] == value for key, value in expected.items())

    return shows


def _closed_responses(metrics: str) -> float:
    """499s answered so far (a client that left before its response), any model."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("openai_frontend_http_responses_total{") and 'status="499"' in line
    )


#: One of each shape that waits: streamed and not, chat, completions and Responses.
LEAVERS = [
    ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 8, "stream": True}),
    ("/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 8}),
    ("/v1/completions", {"prompt": "One, two,", "max_tokens": 8, "stream": True}),
    ("/v1/completions", {"prompt": "One, two,", "max_tokens": 8}),
    ("/v1/responses", {"input": "Count to ten.", "max_output_tokens": 16, "store": False}),
]


async def _send_and_leave_later(base_url: str, path: str, body: dict) -> None:
    """A client that waits for its answer on a connection of its own until cancelled,
    which closes that connection."""
    async with httpx.AsyncClient(base_url=base_url, timeout=None) as own:
        await own.post(path, json={"model": MODEL_NAME, **body})


def test_clients_that_leave_while_waiting_never_run(tmp_path):
    """Before, with one slot, five clients that left while queued all ran once the slot
    was free; a request waiting in the engine for its prefill ran too.

    Two admission slots, but the engine runs one sequence at a time (vLLM's
    ``max_num_seqs`` 1): behind the blocker, the first leaver holds the second slot and
    waits inside the engine for its prefill, the other four wait in the admission queue.
    """
    flags = (
        *("--max-concurrent-requests", "2", "--admin-api-key", ADMIN_KEY),
        *("--engine-args", json.dumps({"max_num_seqs": 1})),
    )
    with default_model_server(tmp_path / "server.log", *flags) as running:

        async def scenario() -> None:
            async with httpx.AsyncClient(base_url=running.base_url, timeout=60) as client:
                closed = (await _gauges(client))["closed"]
                blocker = Blocker(client)
                await blocker.until("it held its slot", showing(client, admitted=1, in_engine=1))
                first, *others = (
                    _send_and_leave_later(running.base_url, path, body) for path, body in LEAVERS
                )
                leavers = [asyncio.create_task(first)]
                await blocker.until("a leaver waited in the engine", showing(client, in_engine=2))
                leavers += [asyncio.create_task(other) for other in others]
                await blocker.until("four leavers queued", showing(client, waiting=4, admitted=2))
                for leaver in leavers:
                    leaver.cancel()
                await asyncio.gather(*leavers, return_exceptions=True)
                # Each leaver answered 499 and left the queue and the engine, which holds
                # the blocker alone: nothing of theirs reached it, or runs later.
                await blocker.until(
                    "the leavers were dropped",
                    showing(client, waiting=0, admitted=1, in_engine=1, closed=closed + 5),
                )
                await blocker.close()
                await _until(showing(client, admitted=0, in_engine=0))

        asyncio.run(scenario())


async def _until(holds: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``holds`` until true; a guard against a hang, not a time budget."""
    for _ in range(1200):
        if await holds():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server never settled")


def test_a_request_queued_past_the_queue_timeout_is_a_503_with_retry_after(tmp_path):
    flags = (
        *("--max-concurrent-requests", "1", "--admin-api-key", ADMIN_KEY),
        *("--queue-timeout", str(QUEUE_TIMEOUT_S)),
    )
    with default_model_server(tmp_path / "server.log", *flags) as running:

        async def scenario() -> tuple[httpx.Response, float]:
            async with httpx.AsyncClient(base_url=running.base_url, timeout=60) as client:
                blocker = Blocker(client)
                await blocker.until("it held its slot", showing(client, admitted=1))
                sent = time.monotonic()
                body = {"model": MODEL_NAME, "messages": MESSAGES, "max_tokens": 4}
                answer = await client.post("/v1/chat/completions", json=body)
                waited = time.monotonic() - sent
                assert not blocker.task.done(), "the slot stayed taken the whole time"
                await blocker.close()
                return answer, waited

        answer, waited = asyncio.run(scenario())
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    error = answer.json()["error"]
    assert error["code"] == "queue_timeout" and "--queue-timeout" in error["message"]
    assert waited >= QUEUE_TIMEOUT_S
