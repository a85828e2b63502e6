"""The chat and completions stream generators close the engine's deltas when the client
goes away: the engine aborts the request then, not whenever garbage collection runs.

Driven by plain async generators standing in for the merged engine stream (no engine:
what is checked is that the router closes what it was given).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from engines.base import Delta
from openai_frontend.choices import Reply
from openai_frontend.parsing.base import ParsedDelta
from openai_frontend.routers import chat, completions
from openai_frontend.routers.completions import _Reply


class _PlainOutputs:
    """Stands in for ChoiceOutputs: every delta is content."""

    def parse(self, index: int, delta: Delta) -> ParsedDelta:
        return ParsedDelta(content=delta.text)

    def finish_reason(self, index: int) -> str:
        return "stop"


def _assert_closing_closes_the_deltas(make_stream) -> None:
    closed: list[str] = []

    async def endless() -> AsyncIterator[tuple[int, Delta]]:
        try:
            count = 0
            while True:
                count += 1
                yield 0, Delta("x", [1], count, None)
        finally:
            closed.append("deltas")

    async def run() -> None:
        deltas = endless()  # held here, so garbage collection cannot close it
        stream = make_stream(deltas)
        await anext(stream)
        await anext(stream)
        await stream.aclose()
        # Checked while the loop runs: asyncio.run's shutdown would close it anyway.
        assert closed == ["deltas"]
        await deltas.aclose()

    asyncio.run(run())


def test_the_chat_stream_closes_the_engine_deltas_when_closed():
    reply = Reply("chatcmpl-1", 0, "m", 1, 1, False)
    _assert_closing_closes_the_deltas(
        lambda deltas: chat._stream(deltas, reply, False, _PlainOutputs())
    )


def test_the_completions_stream_closes_the_engine_deltas_when_closed():
    reply = _Reply("cmpl-1", 0, "m", 1, 1, False)
    _assert_closing_closes_the_deltas(lambda deltas: completions._stream(deltas, reply, 1, False))
