"""A chat run's parsed deltas as Anthropic's Messages events and Message body.

The run becomes one sequence of events (``message_start``, ``ping``, per content block
``content_block_start`` / ``content_block_delta`` / ``content_block_stop``, then
``message_delta`` and ``message_stop``). A stream sends them as they come; a
non-streamed reply folds the very same events into its Message, as Anthropic's SDKs
accumulate a stream, so the two can never disagree.

Thinking, text and each tool call get a block of their own, numbered in the order they
start; a block closes when the next one opens.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, TypeVar

from openai_frontend.anthropic.errors import anthropic_error
from openai_frontend.chat_run import ChatRun
from openai_frontend.errors import APIError
from openai_frontend.parsing.base import ParsedDelta, ToolCallDelta
from openai_frontend.streaming import StreamEnding, event_frame

T = TypeVar("T")

PING = {"type": "ping"}


def anthropic_id(prefix: str) -> str:
    """Anthropic's ids: ``msg_…`` for messages, ``toolu_…`` for tool calls."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _empty_block(kind: str) -> dict[str, Any]:
    if kind == "thinking":
        # No signature: this server's reasoning is not signed (there is nothing to verify).
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "text", "text": ""}


class ContentBlocks:
    """Parsed deltas in, content-block events out."""

    def __init__(self) -> None:
        self._open: str | None = None
        self._count = 0
        #: Block index of each tool call (by the parser's call index).
        self._tool_blocks: dict[int, int] = {}

    @property
    def used_tools(self) -> bool:
        return bool(self._tool_blocks)

    def add(self, parsed: ParsedDelta) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if parsed.reasoning:
            events += self._text("thinking", parsed.reasoning)
        if parsed.content:
            events += self._text("text", parsed.content)
        for call in parsed.tool_calls:
            events += self._tool(call)
        return events

    def close(self) -> list[dict[str, Any]]:
        """The open block's ``content_block_stop``, if a block is open."""
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._count - 1}]

    def _start(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self.close()
        self._open = kind
        self._count += 1
        events.append(
            {"type": "content_block_start", "index": self._count - 1, "content_block": block}
        )
        return events

    def _text(self, kind: str, text: str) -> list[dict[str, Any]]:
        events = [] if self._open == kind else self._start(kind, _empty_block(kind))
        events.append(_delta(self._count - 1, {"type": f"{kind}_delta", kind: text}))
        return events

    def _tool(self, call: ToolCallDelta) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if call.name is not None:
            block = {
                "type": "tool_use",
                "id": anthropic_id("toolu"),
                "name": call.name,
                "input": {},
            }
            events = self._start("tool_use", block)
            self._tool_blocks[call.index] = self._count - 1
        if call.arguments:
            json_delta = {"type": "input_json_delta", "partial_json": call.arguments}
            events.append(_delta(self._tool_blocks[call.index], json_delta))
        return events


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


#: The chat pipeline's finish reasons that end a turn as the model or the server chose
#: (not cut by ``max_tokens``, no call, no stop sequence): vLLM's ``repetition`` (an
#: operator's repetition detection stopped a looping reply) and an engine's abort (which
#: chat reports as ``stop``) are the server ending the turn, and Anthropic has no other
#: value for that.
_TURN_ENDS = frozenset({"stop", "tool_calls", "repetition"})


def stop_reason(finish_reason: str, used_tools: bool, stop_sequence: str | None) -> str:
    """Anthropic's ``stop_reason`` for the chat pipeline's finish reason: only ever one
    of Anthropic's values.

    Any tool call is ``tool_use`` (Anthropic says so for a forced ``tool_choice`` too),
    unless the reply was cut by ``max_tokens``. A finish reason this table does not know
    is a bug, raised (the stream then ends with an ``error`` event), never passed on.
    """
    if finish_reason == "length":
        return "max_tokens"
    if finish_reason not in _TURN_ENDS:
        raise RuntimeError(f"no Anthropic stop_reason for finish reason {finish_reason!r}")
    if used_tools:
        return "tool_use"
    if stop_sequence is not None:
        return "stop_sequence"
    return "end_turn"


def usage(run: ChatRun) -> dict[str, int]:
    """Anthropic's counts: ``input_tokens`` are the prompt's tokens after the last cache
    read, so ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` is
    the whole prompt (the prefix cache here creates entries as a side effect: none are
    counted as written)."""
    counts = run.outputs.usage(run.reply.prompt_tokens)
    cached = (counts.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return {
        "input_tokens": counts["prompt_tokens"] - cached,
        "output_tokens": counts["completion_tokens"],
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


async def message_events(
    run: ChatRun,
    encode: Callable[[dict[str, Any]], T] = lambda event: event,
) -> AsyncIterator[T]:
    """Every event of the reply, from ``message_start`` to ``message_stop``, each as
    ``encode`` makes it (a stream's SSE frame is made here, not by a generator around
    this one: one hop less per token).

    ``message_start`` follows the first delta (already there: the run is primed), whose
    prefill tells how much of the prompt was read from the cache.
    """
    blocks = ContentBlocks()
    stop_sequence = None
    started = False
    async with aclosing(run.deltas):
        async for index, delta in run.deltas:
            parsed = run.outputs.parse(index, delta)
            if not started:
                started = True
                for event in _opening(run):
                    yield encode(event)
            for event in blocks.add(parsed):
                yield encode(event)
            if delta.finish_reason is not None:
                stop_sequence = delta.stop_sequence
    if not started:  # a run that ended without a delta
        for event in _opening(run):
            yield encode(event)
    for event in blocks.close():
        yield encode(event)
    reason = stop_reason(run.outputs.finish_reason(0), blocks.used_tools, stop_sequence)
    yield encode(
        {
            "type": "message_delta",
            "delta": {
                "stop_reason": reason,
                "stop_sequence": stop_sequence if reason == "stop_sequence" else None,
            },
            "usage": usage(run),
        }
    )
    yield encode({"type": "message_stop"})


def _opening(run: ChatRun) -> list[dict[str, Any]]:
    return [{"type": "message_start", "message": _message_head(run)}, PING]


def _message_head(run: ChatRun) -> dict[str, Any]:
    return {
        "id": anthropic_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": run.reply.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage(run), "output_tokens": 0},
    }


def event_stream(run: ChatRun) -> AsyncIterator[bytes]:
    """The events as named SSE frames."""
    return message_events(run, _framed)


def _framed(event: dict[str, Any]) -> bytes:
    return event_frame(event["type"], event)


async def whole_message(run: ChatRun) -> dict[str, Any]:
    """The non-streamed Message: the same events, folded."""
    message: dict[str, Any] = {}
    partial_json: dict[int, str] = {}
    async with aclosing(message_events(run)) as events:
        async for event in events:
            _fold(message, partial_json, event)
    return message


def _fold(message: dict[str, Any], partial_json: dict[int, str], event: dict[str, Any]) -> None:
    kind = event["type"]
    if kind == "message_start":
        message.update(event["message"])
    elif kind == "content_block_start":
        message["content"].append(dict(event["content_block"]))
    elif kind == "content_block_delta":
        delta = event["delta"]
        block = message["content"][event["index"]]
        if delta["type"] == "input_json_delta":
            partial_json[event["index"]] = (
                partial_json.get(event["index"], "") + delta["partial_json"]
            )
        else:
            field = delta["type"].removesuffix("_delta")
            block[field] += delta[field]
    elif kind == "content_block_stop":
        block = message["content"][event["index"]]
        if block["type"] == "tool_use":
            block["input"] = _tool_input(partial_json.get(event["index"], ""))
    elif kind == "message_delta":
        message.update(event["delta"])
        message["usage"] = event["usage"]


def _tool_input(arguments: str) -> dict[str, Any]:
    """A call's arguments as its ``input`` object. Arguments cut short by ``max_tokens``
    (the reply then says ``stop_reason: max_tokens``) are no object: ``{}``."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def error_frame(exc: BaseException) -> bytes:
    """A failure after the stream began, as Anthropic's ``error`` event."""
    if not isinstance(exc, APIError):
        exc = APIError("The server had an error while streaming the response.", status=500)
    return event_frame("error", anthropic_error(exc.message, exc.status))


#: Messages streams end with ``message_stop``, no ``[DONE]``.
ANTHROPIC_ENDING = StreamEnding(last=None, error=error_frame)
