"""The lean SSE response: our frame loop inside sse-starlette's response.

Driven as an ASGI app with a send of the test's own: every frame goes out once and in
order, and the stream ends well-formed whatever its source does. The loop relies on
private attributes of sse-starlette's response (its shutdown and disconnect logic reads
them); the first test fails if an sse-starlette upgrade renames them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sse_starlette import EventSourceResponse

from openai_frontend.errors import APIError
from openai_frontend.streaming import DONE, LeanEventSourceResponse, StreamEnding

SCOPE = {"type": "http", "method": "POST", "path": "/", "headers": []}


async def _never_disconnects() -> dict:
    await asyncio.Event().wait()
    return {}


def _run(response: LeanEventSourceResponse, send=None) -> list[dict]:  # noqa: ANN001
    sent: list[dict] = []

    async def record(message: dict) -> None:
        sent.append(message)

    asyncio.run(response(SCOPE, _never_disconnects, send or record))
    return sent


def _bodies(sent: list[dict]) -> list[bytes]:
    return [m["body"] for m in sent if m["type"] == "http.response.body"]


async def _frames(*chunks: bytes, then: BaseException | None = None) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    if then is not None:
        raise then


def test_the_private_state_it_shares_still_exists_upstream() -> None:
    assert callable(getattr(EventSourceResponse, "_stream_response", None))
    response = EventSourceResponse(_frames(), shutdown_event=None)
    for name in ("_send_interrupted", "_response_started", "_response_complete"):
        assert getattr(response, name) is False, name
    for name in ("_send_lock", "_shutdown_event", "active"):
        assert hasattr(response, name), name


def test_every_frame_goes_out_once_then_the_ending_and_the_closing_body() -> None:
    sent = _run(LeanEventSourceResponse(_frames(b"data: 1\n\n", b"data: 2\n\n")))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert _bodies(sent) == [b"data: 1\n\n", b"data: 2\n\n", DONE, b""]
    assert [m.get("more_body", False) for m in sent[1:]] == [True, True, True, False]


def test_a_failing_source_ends_with_the_dialects_error_event_and_no_last_frame() -> None:
    ending = StreamEnding(last=None, error=lambda exc: b"event: error\n\n")
    failing = _frames(b"data: 1\n\n", then=RuntimeError("engine died"))
    sent = _run(LeanEventSourceResponse(failing, ending=ending))
    assert _bodies(sent) == [b"data: 1\n\n", b"event: error\n\n", b""]


def test_an_api_error_mid_stream_is_framed_with_its_own_body_then_done() -> None:
    failing = _frames(then=APIError("bad adapter", status=400, param="model"))
    bodies = _bodies(_run(LeanEventSourceResponse(failing)))
    assert b'"param":"model"' in bodies[0] and bodies[1:] == [DONE, b""]


def test_on_shutdown_a_stalled_stream_ends_after_the_drain_timeout() -> None:
    closed = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        try:
            yield b"data: 1\n\n"
            response._shutdown_event.set()  # the server's exit signal, as sse-starlette sets it
            yield b"data: 2\n\n"
            await asyncio.Event().wait()  # the engine never answers again
            yield b"data: never\n\n"
        finally:
            closed.set()

    response = LeanEventSourceResponse(stalls(), drain_timeout=0.05)
    bodies = _bodies(_run(response))
    assert bodies[:2] == [b"data: 1\n\n", b"data: 2\n\n"]
    assert b"server_shutdown" in bodies[2] and bodies[3:] == [DONE, b""]
    assert closed.is_set()  # the source was closed: the engine request is aborted


def test_a_failed_send_is_marked_interrupted_and_closes_the_source() -> None:
    closed = []

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"data: x\n\n"
        finally:
            closed.append(True)

    attempts = []

    async def broken(message: dict) -> None:
        if message["type"] == "http.response.body":
            attempts.append(message)
            raise OSError("peer gone")

    response = LeanEventSourceResponse(endless())
    with pytest.raises(OSError):
        _run(response, broken)
    assert response._send_interrupted is True  # no closing frame on a broken transport
    assert len(attempts) == 1  # nor an error event
    assert closed == [True]
