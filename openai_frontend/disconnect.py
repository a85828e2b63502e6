"""Stop work for a client that has gone away (non-streaming requests).

Streams are covered by sse-starlette, which cancels the generator on disconnect. A
non-streaming request would otherwise keep generating for nobody; here the work is
cancelled as soon as the server sees ``http.disconnect``, which aborts it in the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress
from typing import TypeVar

from fastapi import Request
from starlette.responses import Response

T = TypeVar("T")

#: nginx's "client closed request"; nobody reads it, but logs and metrics do.
CLIENT_CLOSED = 499


class ClientDisconnected(Exception):
    """The client left before the response was ready."""


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    raise ClientDisconnected


def closed_response() -> Response:
    return Response(status_code=CLIENT_CLOSED)
