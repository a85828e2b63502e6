"""The lean SSE response overrides two private methods of sse-starlette's response; these
tests fail if an sse-starlette upgrade renames them or stops marking an interrupted send,
which is what its shutdown relies on to skip the closing frame on a broken transport."""

from __future__ import annotations

import asyncio

import pytest
from sse_starlette import EventSourceResponse

from openai_frontend.streaming import LeanEventSourceResponse


async def _frames():
    yield b"data: 1\n\n"


def test_the_overridden_method_still_exists_upstream() -> None:
    assert callable(getattr(EventSourceResponse, "_send_with_timeout", None))
    # --stream-coalesce-ms hands its own send to this one
    assert callable(getattr(EventSourceResponse, "_stream_response", None))
    assert LeanEventSourceResponse(_frames())._send_interrupted is False


def test_a_failed_send_is_marked_interrupted_and_re_raised() -> None:
    response = LeanEventSourceResponse(_frames())

    async def broken(message: dict) -> None:
        raise OSError("peer gone")

    with pytest.raises(OSError):
        asyncio.run(response._send_with_timeout(broken, {"type": "http.response.body"}))
    assert response._send_interrupted is True


def test_a_send_timeout_still_takes_sse_starlettes_own_path() -> None:
    response = LeanEventSourceResponse(_frames(), send_timeout=0.01)
    sent: list[dict] = []

    async def slow(message: dict) -> None:
        sent.append(message)
        await asyncio.sleep(1)

    with pytest.raises(Exception) as caught:
        asyncio.run(response._send_with_timeout(slow, {"type": "http.response.body"}))
    assert type(caught.value).__name__ == "SendTimeoutError"
    assert response._send_interrupted is True
