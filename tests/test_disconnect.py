"""A client that disconnects mid-stream aborts its request in the engine.

Observed through the engine's own count of unfinished requests (reported by
/health/ready), not through the socket.
"""

from __future__ import annotations

import httpx
from disconnects import assert_a_disconnect_mid_stream_aborts, engine_unfinished, wait_for


def test_disconnect_aborts_in_engine(server, http):
    payload = {
        "model": server.model,
        "messages": [{"role": "user", "content": "Write a very long essay about the sea."}],
        "max_tokens": 2000,
        "ignore_eos": True,
        "stream": True,
    }
    # A few content frames: the request is running.
    assert_a_disconnect_mid_stream_aborts(server, http, "/v1/chat/completions", payload, "data: ")


def test_non_streaming_disconnect_aborts_in_engine(server, http):
    assert wait_for(lambda: engine_unfinished(http) == 0)
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
    assert wait_for(lambda: engine_unfinished(http) == 0, timeout=10)
