"""Server-sent events: ``data: <json>\\n\\n`` frames, ending with ``data: [DONE]``.

Frames are encoded here as bytes once, so sse-starlette sends them untouched; it owns
the connection and cancels the generator when the client goes away, which aborts the
engine request (the generator chain closes down to the engine backend).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass

import anyio
import orjson
from sse_starlette import EventSourceResponse
from sse_starlette.sse import AppStatus
from starlette.types import Send

from openai_frontend.coalesce import CoalescingSend
from openai_frontend.config import ServerConfig
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


SHUTDOWN_ERROR = APIError(
    "The server is shutting down; this stream was stopped.", status=503, code="server_shutdown"
)


def event_frame(event: str, payload: object) -> bytes:
    """A named SSE event (``event:`` then ``data:``), as the Responses and Messages APIs
    send them."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


@dataclass(frozen=True)
class StreamEnding:
    """How a dialect ends its stream: OpenAI's ``[DONE]`` (chat, completions) or nothing
    (Responses, Messages), and how it frames a failure after the headers went out."""

    last: bytes | None = DONE
    error: Callable[[BaseException], bytes] = error_frame


OPENAI_ENDING = StreamEnding()


async def _guarded(
    frames: AsyncIterator[bytes],
    shutdown: anyio.Event,
    drain_timeout: float,
    ending: StreamEnding,
) -> AsyncIterator[bytes]:
    """Whatever happens after the headers went out, the stream ends well-formed.

    On shutdown a stream may go on for ``drain_timeout`` seconds; then it is closed
    (which aborts it in the engine) and ends with an error event and ``[DONE]``.
    """
    drain_deadline: float | None = None
    try:
        async with aclosing(frames):
            while True:
                if shutdown.is_set() and drain_deadline is None:
                    drain_deadline = time.monotonic() + drain_timeout
                try:
                    if drain_deadline is None:  # the common case: no timer per frame
                        chunk = await anext(frames)
                    else:
                        timeout = drain_deadline - time.monotonic()
                        chunk = await asyncio.wait_for(anext(frames), timeout)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    yield ending.error(SHUTDOWN_ERROR)
                    break
                yield chunk
    except Exception as exc:
        log.exception("stream failed")
        yield ending.error(exc)
    if ending.last is not None:
        yield ending.last


class LeanEventSourceResponse(EventSourceResponse):
    """sse-starlette's response without its per-frame anyio cancel scope.

    With no ``send_timeout`` (ours sets none), sse-starlette still opens
    ``anyio.move_on_after(None)`` around every frame's send; that scope was a measurable
    share of the gateway's CPU per streamed token. Disconnect detection, the shutdown
    event and the drain are sse-starlette's own, unchanged.
    """

    def __init__(self, *args, coalesce_s: float = 0.0, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.coalesce_s = coalesce_s

    async def _stream_response(self, send: Send) -> None:
        """With ``coalesce_s``, the frames go out through a :class:`CoalescingSend`."""
        if not self.coalesce_s:
            return await super()._stream_response(send)
        coalescing = CoalescingSend(send, self.coalesce_s)
        try:
            await super()._stream_response(coalescing)
        finally:
            coalescing.close()

    async def _send_with_timeout(self, send, message) -> None:  # noqa: ANN001
        if self.send_timeout is not None:
            return await super()._send_with_timeout(send, message)
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True
            raise


def sse_response(
    frames: AsyncIterator[bytes],
    config: ServerConfig,
    ending: StreamEnding = OPENAI_ENDING,
) -> LeanEventSourceResponse:
    """The stream as SSE; ping=0 because OpenAI sends no keep-alive comments either.

    From ``config``: how long a stream may go on once shutdown starts
    (``--drain-timeout``), and ``--stream-coalesce-ms`` (:mod:`openai_frontend.coalesce`).
    """
    shutdown = anyio.Event()
    return LeanEventSourceResponse(
        _guarded(frames, shutdown, config.drain_timeout, ending),
        ping=0,
        headers={"Cache-Control": "no-cache"},
        shutdown_event=shutdown,
        # sse-starlette would cancel the stream after this; ours ends itself first.
        shutdown_grace_period=config.drain_timeout + 5,
        coalesce_s=config.stream_coalesce_ms / 1000,
    )


def is_shutting_down() -> bool:
    return AppStatus.should_exit


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
