"""A client that hangs up mid-stream must abort its request in the engine, in every
dialect (chat, Responses, Messages): one check, given the dialect's path, body and the
stream line that shows the request is running.

Observed through the engine's own count of unfinished requests (reported by
/health/ready), not through the socket.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from conftest import Server, engine_view


def engine_unfinished(http: httpx.Client) -> int:
    return engine_view(http)["engine_unfinished_requests"]


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def assert_a_disconnect_mid_stream_aborts(
    server: Server,
    http: httpx.Client,
    path: str,
    body: dict,
    running: str,
    lines_running: int = 3,
    headers: dict[str, str] | None = None,
) -> None:
    """Stream BODY (~2000 tokens still to go, vLLM's ``ignore_eos``: ~60 s of work) to
    PATH on a connection of its own, read until LINES_RUNNING lines start with RUNNING,
    hang up, and expect the engine to drop the request within 10 s."""
    assert wait_for(lambda: engine_unfinished(http) == 0)
    with (
        httpx.Client(
            base_url=server.base_url, timeout=60, headers=headers or server.headers
        ) as own,
        own.stream("POST", path, json=body) as response,
    ):
        # Held in a name: a line iterator dropped after ``break`` is closed at once, and
        # httpx then closes the connection, which is the disconnect this check makes later.
        lines = response.iter_lines()
        seen = 0
        while seen < lines_running:
            seen += next(lines).startswith(running)
        assert engine_unfinished(http) == 1
    assert wait_for(lambda: engine_unfinished(http) == 0, timeout=10)
