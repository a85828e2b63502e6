"""Large JSON bodies are parsed in a worker thread, so the event loop keeps streaming.

FastAPI parses request bodies on the event loop; a multi-megabyte body would stall
every stream for the whole parse. Routes built with :class:`OffLoopJSONRoute` parse a
body above ``THRESHOLD_BYTES`` with ``asyncio.to_thread`` first and hand FastAPI the
result (Starlette's ``Request.json()`` caches it). Invalid JSON is left for FastAPI to
parse again and report as usual; JSON nested deeper than Python's recursion limit is
refused at once (a ``RecursionError`` is no ``ValueError``, and parsing it again on the
loop would only fail the same way, slowly).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from openai_frontend.errors import unparsable_json

THRESHOLD_BYTES = 256 * 1024


async def parse_large_body(request: Request) -> None:
    body = await request.body()
    if len(body) <= THRESHOLD_BYTES:
        return
    try:
        request._json = await asyncio.to_thread(json.loads, body)
    except ValueError:
        return  # invalid JSON: FastAPI parses again on the loop and answers with its 400
    except RecursionError:
        raise unparsable_json() from None


class OffLoopJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parse_then_handle(request: Request) -> Response:
            await parse_large_body(request)
            return await handler(request)

        return parse_then_handle
