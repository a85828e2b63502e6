"""Shared by the test_parsers_* files: drive a parser stage the way the router will."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from engines.base import Delta
from openai_frontend.parsing.base import ParsedDelta
from openai_frontend.parsing.pipeline import MessageBuilder, OutputParser, parse_whole
from openai_frontend.parsing.registry import make_output_parser

MARKUP = ("<think>", "</think>", "<tool_call>", "</tool_call>", "[TOOL_CALLS]", "[ARGS]")


def stream(parser: OutputParser, pieces: list[str]) -> list[ParsedDelta]:
    """Each piece as one engine delta (one token each), the last with finish_reason."""
    out = []
    for count, piece in enumerate(pieces, start=1):
        reason = "stop" if count == len(pieces) else None
        out.append(parser.parse(Delta(piece, [0], count, reason)))
    return out


def collect(deltas: list[ParsedDelta]) -> dict[str, Any]:
    message = MessageBuilder()
    for delta in deltas:
        message.add(delta)
    return message.fields()


def without_ids(fields: dict[str, Any]) -> dict[str, Any]:
    calls = [{**call, "id": None} for call in fields.get("tool_calls", [])]
    return {**fields, "tool_calls": calls} if calls else fields


def whole(reasoning: str | None, tools: str | None, text: str) -> dict[str, Any]:
    return parse_whole(make_output_parser(reasoning, tools), text)


def streamed(reasoning: str | None, tools: str | None, pieces: list[str]) -> dict[str, Any]:
    return collect(stream(make_output_parser(reasoning, tools), pieces))


@st.composite
def splits(draw, text: str) -> list[str]:
    """``text`` cut at random points (empty pieces included: engines send them)."""
    points = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
