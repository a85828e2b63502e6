"""A client that leaves halfway through sending a large body is a quiet 499 (nginx's
"client closed request"), as a client leaving during generation is: not an error
logged with a traceback, nor a 500 for nobody."""

from __future__ import annotations

import asyncio
import logging

import pytest
from fault_engines import FaultInjectingEngine, in_process_client

from openai_frontend.jsonbody import THRESHOLD_BYTES


def _scope(length: int) -> dict:
    headers = [(b"host", b"test"), (b"content-type", b"application/json")]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [*headers, (b"content-length", str(length).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }


def test_a_client_leaving_mid_upload_is_a_quiet_499(caplog: pytest.LogCaptureFixture) -> None:
    first_part = b'{"model": "m", "messages": [' + b" " * THRESHOLD_BYTES
    arrivals = [
        {"type": "http.request", "body": first_part, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        if arrivals:
            return arrivals.pop(0)
        await asyncio.sleep(3600)  # nothing more ever comes
        raise AssertionError("unreachable")

    async def send(message: dict) -> None:
        sent.append(message)

    async def run() -> None:
        async with in_process_client(FaultInjectingEngine(tokens_before_fault=2)) as client:
            app = client._transport.app  # the real app, started through its lifespan
            await app(_scope(2 * len(first_part)), receive, send)

    with caplog.at_level(logging.WARNING):
        asyncio.run(run())
    starts = [message for message in sent if message["type"] == "http.response.start"]
    assert [start["status"] for start in starts] == [499]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
