"""Server-sent events: ``data: <json>\\n\\n`` frames, ending with ``data: [DONE]``.

Frames are encoded here as bytes once, so sse-starlette sends them untouched; it owns
the connection and cancels the generator when the client goes away, which aborts the
engine request (the generator chain closes down to the engine backend).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson
from sse_starlette import EventSourceResponse

from openai_frontend.errors import APIError, error_body

log = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"


def frame(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def error_frame(exc: BaseException) -> bytes:
    """A mid-stream failure, as an OpenAI error object in a ``data:`` frame."""
    if isinstance(exc, APIError):
        return frame(exc.body())
    return frame(
        error_body("The server had an error while streaming the response.", "server_error")
    )


async def _guarded(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Whatever happens after the headers went out, the stream ends well-formed."""
    try:
        async for chunk in frames:
            yield chunk
    except Exception as exc:
        log.exception("stream failed")
        yield error_frame(exc)
    yield DONE


def sse_response(frames: AsyncIterator[bytes]) -> EventSourceResponse:
    # ping=0: OpenAI sends no keep-alive comments, so neither do we.
    return EventSourceResponse(_guarded(frames), ping=0, headers={"Cache-Control": "no-cache"})


class ChunkFramer:
    """Frames stream chunks that share id, object, created and model.

    The shared head is encoded once per stream; each frame then encodes only its
    choice, which keeps the per-token cost of the gateway to one small orjson call.
    """

    def __init__(self, head: dict, include_usage: bool) -> None:
        self._prefix = b"data: " + orjson.dumps(head)[:-1] + b',"choices":['
        self._suffix = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"
        self._head = head

    def choice(self, choice: dict) -> bytes:
        return self._prefix + orjson.dumps(choice) + self._suffix

    def usage(self, usage: dict) -> bytes:
        return frame({**self._head, "choices": [], "usage": usage})
