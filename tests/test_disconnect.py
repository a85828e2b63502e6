"""A client that disconnects mid-stream aborts its request in the engine.

Observed through the engine's own count of unfinished requests (reported by
/health/ready), not through the socket.
"""

from __future__ import annotations

import time

import httpx
from conftest import engine_view


def _engine_unfinished(http: httpx.Client) -> int:
    return engine_view(http)["engine_unfinished_requests"]


def _wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_disconnect_aborts_in_engine(server, http):
    assert _wait_for(lambda: _engine_unfinished(http) == 0)
    payload = {
        "model": server.model,
        "messages": [{"role": "user", "content": "Write a very long essay about the sea."}],
        "max_tokens": 2000,
        "ignore_eos": True,
        "stream": True,
    }
    with (
        httpx.Client(base_url=server.base_url, timeout=60, headers=server.headers) as own,
        own.stream("POST", "/v1/chat/completions", json=payload) as response,
    ):
        lines = response.iter_lines()
        for _ in range(6):  # a few content frames: the request is running
            next(lines)
        assert _engine_unfinished(http) == 1
    # The client closed its connection with ~2000 tokens still to go (~60 s of work).
    assert _wait_for(lambda: _engine_unfinished(http) == 0, timeout=10)


def test_non_streaming_disconnect_aborts_in_engine(server, http):
    assert _wait_for(lambda: _engine_unfinished(http) == 0)
    payload = {
        "model": server.model,
        "prompt": "Once upon a time",
        "max_tokens": 2000,
        "ignore_eos": True,
    }
    with httpx.Client(base_url=server.base_url, timeout=3, headers=server.headers) as own:
        try:
            own.post("/v1/completions", json=payload)
        except httpx.ReadTimeout:
            pass
        else:
            raise AssertionError("2000 tokens cannot finish in 3 s on this machine")
    # The client gave up after 3 s; the engine must drop the request, not finish it.
    assert _wait_for(lambda: _engine_unfinished(http) == 0, timeout=10)
