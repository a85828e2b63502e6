"""What an output parser emits, and the two small Protocols parsers implement.

A model writes its reasoning, its answer and its tool calls into one text stream; the
parsers split that stream into OpenAI's three channels. Everything here is plain data,
so the router can turn a :class:`ParsedDelta` into a stream chunk or accumulate it
into a message without knowing which model family produced it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from openai_frontend.parsing.assembly import Hole, fill


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """One piece of one tool call, in OpenAI's streaming shape.

    The first piece of a call has ``id`` and ``name``; the later ones only an
    ``arguments`` fragment. The fragments of a call join into its ``arguments`` string.
    """

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None

    def to_openai(self) -> dict[str, Any]:
        if self.name is None:
            return {"index": self.index, "function": {"arguments": self.arguments}}
        return {
            "index": self.index,
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(slots=True)
class ParsedDelta:
    """What one engine delta became once parsed: text in up to three channels."""

    content: str = ""
    reasoning: str = ""
    #: A tuple until a parser adds calls: no list to allocate on the per-delta path.
    tool_calls: Sequence[ToolCallDelta] = ()

    def __bool__(self) -> bool:
        return bool(self.content or self.reasoning or self.tool_calls)

    def add(self, other: ParsedDelta) -> ParsedDelta:
        self.content += other.content
        self.reasoning += other.reasoning
        if other.tool_calls:
            self.tool_calls = [*self.tool_calls, *other.tool_calls]
        return self

    def to_openai(self) -> dict[str, Any]:
        """The chunk's ``delta`` object: only the channels this piece carries."""
        delta: dict[str, Any] = {}
        if self.reasoning:
            delta["reasoning_content"] = self.reasoning
        if self.content:
            delta["content"] = self.content
        if self.tool_calls:
            delta["tool_calls"] = [call.to_openai() for call in merged_by_index(self.tool_calls)]
        return delta


def merged_by_index(pieces: Sequence[ToolCallDelta]) -> list[ToolCallDelta]:
    """One piece per call index, its fragments joined in order (the header kept).

    OpenAI and vLLM send at most one ``tool_calls`` entry per index in a chunk; older
    clients that append each entry as it comes would otherwise duplicate the call.
    """
    merged: dict[int, ToolCallDelta] = {}
    for piece in pieces:
        before = merged.get(piece.index)
        if before is None:
            merged[piece.index] = piece
        else:
            merged[piece.index] = ToolCallDelta(
                piece.index,
                before.arguments + piece.arguments,
                before.id or piece.id,
                before.name or piece.name,
            )
    return list(merged.values())


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """A complete tool call as a parser found it, its arguments already serialised."""

    name: str
    arguments: str

    @classmethod
    def of(cls, name: str, arguments: dict[str, Any], holes: Sequence[Hole] = ()) -> ParsedCall:
        """ValueError if the arguments are not plain JSON (NaN, bytes, sets...) or nest
        too deeply to serialise (``RecursionError``: parsers return such markup as content).

        ``holes``: the arguments were decoded from a skeleton (see :mod:`.assembly`).
        """
        try:
            return cls(name, fill(canonical_arguments(arguments), holes))
        except (TypeError, ValueError, RecursionError) as error:
            raise ValueError(f"arguments of {name} are not JSON: {error}") from error


def canonical_arguments(arguments: dict[str, Any]) -> str:
    """The one serialisation of a call's arguments, streamed and non-streamed alike.

    ``json.dumps`` of the parsed value rather than the model's own text: the pythonic
    format has no JSON text, and re-serialising drops the model's whitespace quirks.
    (A parsed value cannot be circular: the check for it only costs time.)
    """
    return json.dumps(arguments, ensure_ascii=False, allow_nan=False, check_circular=False)


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


class CallNumbering:
    """Gives a choice's tool calls their indices 0, 1, ... and their ids."""

    def __init__(self) -> None:
        self.count = 0

    def deltas(self, calls: list[ParsedCall]) -> list[ToolCallDelta]:
        """Each call as its header piece (id, name) and one arguments fragment."""
        pieces: list[ToolCallDelta] = []
        for call in calls:
            index, self.count = self.count, self.count + 1
            pieces.append(ToolCallDelta(index, "", new_call_id(), call.name))
            pieces.append(ToolCallDelta(index, call.arguments))
        return pieces


class ReasoningParser(Protocol):
    """Splits text into ``(reasoning, answer)``; holds back any partial marker."""

    #: True while the text fed so far is still inside the reasoning section.
    in_reasoning: bool
    #: True once all later text is answer, unchanged: the caller may skip ``feed``.
    passthrough: bool

    def feed(self, text: str) -> tuple[str, str]: ...

    def finish(self) -> tuple[str, str]: ...


class ToolParser(Protocol):
    """Turns answer text into content and tool calls; holds back any partial markup.

    ``finish`` returns whatever was held back: markup that never closed (cut by
    ``max_tokens``) comes back as content text, verbatim, so nothing is lost.
    """

    def feed(self, text: str) -> ParsedDelta: ...

    def finish(self) -> ParsedDelta: ...
