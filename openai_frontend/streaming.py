"""Server-sent events: ``data: <json>\\n\\n`` frames, ending with ``data: [DONE]``.

Frames are encoded here as bytes once and sent untouched. sse-starlette's response owns
the connection and cancels the stream when the client goes away, which aborts the
engine request (the generator chain closes down to the engine backend).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass

import anyio
import orjson
from sse_starlette import EventSourceResponse
from sse_starlette.sse import AppStatus
from starlette.types import Message, Send

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
    return _event_head(event) + orjson.dumps(payload) + b"\n\n"


@functools.lru_cache(maxsize=128)
def _event_head(event: str) -> bytes:
    """``event: NAME\\ndata: ``, made once per name: the APIs have a few dozen."""
    return b"event: " + event.encode() + b"\ndata: "


@dataclass(frozen=True)
class StreamEnding:
    """How a dialect ends its stream: OpenAI's ``[DONE]`` (chat, completions) or nothing
    (Responses, Messages), and how it frames a failure after the headers went out."""

    last: bytes | None = DONE
    error: Callable[[BaseException], bytes] = error_frame


OPENAI_ENDING = StreamEnding()


class LeanEventSourceResponse(EventSourceResponse):
    """sse-starlette's response with a frame loop of our own.

    sse-starlette keeps what it is good at: watching for the client's disconnect, the
    server's exit signal, the drain's grace period and the closing frame after it. The
    loop that sends the frames is ours, because it is the gateway's hottest path: per
    frame, sse-starlette's opens an anyio cancel scope (even with no send timeout),
    converts and logs the chunk, and reads it through one more generator. This one
    awaits the dialect's next frame and sends it, nothing else.

    Whatever happens after the headers went out, the stream ends well-formed: a failure
    of the frame source becomes the dialect's error event, and on shutdown a stream may
    go on for ``drain_timeout`` seconds, then is closed (which aborts it in the engine)
    and ends with an error event. Then the dialect's last frame (``[DONE]``), if any.
    """

    def __init__(
        self,
        frames: AsyncIterator[bytes],
        *,
        ending: StreamEnding = OPENAI_ENDING,
        drain_timeout: float = 30.0,
        coalesce_s: float = 0.0,
        **kwargs,  # noqa: ANN003
    ) -> None:
        super().__init__(
            frames,
            shutdown_event=anyio.Event(),
            # sse-starlette would cancel the stream after this; ours ends itself first.
            shutdown_grace_period=drain_timeout + 5,
            **kwargs,
        )
        self.ending = ending
        self.drain_timeout = drain_timeout
        self.coalesce_s = coalesce_s

    async def _stream_response(self, send: Send) -> None:
        """The headers, the frames, the ending, the closing empty body; with
        ``coalesce_s``, all through a :class:`CoalescingSend`."""
        write = CoalescingSend(send, self.coalesce_s) if self.coalesce_s else send
        try:
            await self._marked(
                write,
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                },
            )
            self._response_started = True
            await self._relay(write)
            if self.ending.last is not None:
                await self._marked(write, _body(self.ending.last))
            async with self._send_lock:  # as sse-starlette: `active` flips after the send
                await self._marked(write, {"type": "http.response.body", "body": b""})
                self._response_complete = True
                self.active = False
        finally:
            if isinstance(write, CoalescingSend):
                write.close()

    async def _relay(self, write: Send) -> None:
        """Every frame of the source, or up to its failure and then an error event."""
        frames = self.body_iterator
        try:
            async with aclosing(frames):
                async for chunk in frames:
                    try:  # _marked's work, inlined: no coroutine of its own per frame
                        await write(_body(chunk))
                    except BaseException:
                        self._send_interrupted = True
                        raise
                    if self._shutdown_event.is_set():
                        await self._drain(frames, write)
                        return
        except Exception as exc:
            if self._send_interrupted:
                raise
            log.exception("stream failed")
            await self._marked(write, _body(self.ending.error(exc)))

    async def _drain(self, frames: AsyncIterator[bytes], write: Send) -> None:
        """The rest of the frames, for at most ``drain_timeout`` seconds from now."""
        deadline = time.monotonic() + self.drain_timeout
        while True:
            try:
                chunk = await asyncio.wait_for(anext(frames), deadline - time.monotonic())
            except StopAsyncIteration:
                return
            except TimeoutError:
                await self._marked(write, _body(self.ending.error(SHUTDOWN_ERROR)))
                return
            await self._marked(write, _body(chunk))

    async def _marked(self, send: Send, message: Message) -> None:
        """Send; a send that fails marks the transport as broken (sse-starlette then
        sends no closing frame on it)."""
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True
            raise


def _body(chunk: bytes) -> Message:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


def sse_response(
    frames: AsyncIterator[bytes],
    config: ServerConfig,
    ending: StreamEnding = OPENAI_ENDING,
) -> LeanEventSourceResponse:
    """The stream as SSE; ping=0 because OpenAI sends no keep-alive comments either.

    From ``config``: how long a stream may go on once shutdown starts
    (``--drain-timeout``), and ``--stream-coalesce-ms`` (:mod:`openai_frontend.coalesce`).
    """
    return LeanEventSourceResponse(
        frames,
        ending=ending,
        drain_timeout=config.drain_timeout,
        coalesce_s=config.stream_coalesce_ms / 1000,
        ping=0,
        headers={"Cache-Control": "no-cache"},
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
        self._text_tail = b'},"logprobs":null,"finish_reason":null}' + self._suffix

    def choice(self, choice: dict) -> bytes:
        return self._prefix + orjson.dumps(choice) + self._suffix

    def text(self, index: int, field: bytes, text: str) -> bytes:
        """The most common frame, a choice whose delta is one text field with no
        logprobs, spliced into its pre-rendered envelope (as vLLM's frame template): the
        same bytes as :meth:`choice` makes of
        ``{"index", "delta": {field: text}, "logprobs": None, "finish_reason": None}``,
        with no dict built and only the text encoded."""
        head = b'{"index":%d,"delta":{"%s":' % (index, field)
        return self._prefix + head + orjson.dumps(text) + self._text_tail

    def usage(self, usage: dict) -> bytes:
        return frame({**self._head, "choices": [], "usage": usage})
