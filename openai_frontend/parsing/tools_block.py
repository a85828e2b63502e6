"""The state machine every tool-call format shares; each format only says how a call
block opens (:meth:`BlockToolParser._sniff`, :attr:`BlockToolParser.opens`) and how it
closes (:meth:`BlockToolParser._close`).

States: ``sniff`` (at the reply's start and after each call: is a call block next?),
``content`` (plain answer text, scanned for :attr:`opens` markers with the shared
hold-back), ``inside`` (a call block, buffered until it closes). Every decision depends
only on the text seen so far, never on where the deltas were cut, so a streamed reply
parses exactly as the whole text does.

Markup that turns out invalid, or calls a function the request did not declare, is
returned as content, verbatim, and so is a block still open when generation ends (cut
by ``max_tokens``): the client sees what the model wrote, nothing is lost and nothing
raises. Whitespace between or after calls is dropped.

A call is emitted once its block has closed and parsed: its header (id, name) and its
whole ``arguments`` in one fragment. Streaming the arguments while the model writes
them would show the client calls that a broken block later turns into content, and the
streamed answer would then differ from the non-streamed one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from typing import Any

from openai_frontend import jsondecode
from openai_frontend.parsing.assembly import Hole, hole_at
from openai_frontend.parsing.base import CallNumbering, ParsedCall, ParsedDelta
from openai_frontend.parsing.strict import StrictSchemas
from openai_frontend.textstream import MarkerSearch

#: What :meth:`BlockToolParser._close` returns once a block has ended: the calls (None
#: when the markup was invalid) and how much of the block's text the block took.
Closed = tuple[list[ParsedCall] | None, int]


class BlockToolParser:
    #: Markers that open a call block anywhere in the content (none: only at the start).
    opens: tuple[str, ...] = ()
    #: What starts a call anywhere in a reply, for the strict tools' grammar (see
    #: :mod:`.strict`): none when the format cannot say (its calls are checked instead).
    call_triggers: tuple[str, ...] = ()

    def __init__(
        self, declared: Collection[str] | None = None, strict: StrictSchemas | None = None
    ) -> None:
        #: The request's function names: a call to any other name is content (None:
        #: any name, for callers that parse without a request).
        self._declared = frozenset(declared) if declared is not None else None
        #: Strict functions no grammar held to their schemas: a call that does not
        #: match is content.
        self._strict = strict
        self._search = MarkerSearch(self.opens)
        self._numbering = CallNumbering()
        self._pending = ""
        self._state = "sniff"
        self._opened = ""
        self._cursor = 0

    # -- what a format defines ------------------------------------------------------

    def _sniff(self, head: str) -> int | None:
        """At a call position, ``head`` (no leading whitespace) starts: the length of
        the opener to consume if a call block starts here, -1 if content does, None if
        it is too early to tell. Default: one of :attr:`opens` starts a block."""
        for marker in self.opens:
            if head.startswith(marker):
                return len(marker)
        return None if any(marker.startswith(head) for marker in self.opens) else -1

    def _close(self, body: str) -> Closed | None:
        """None while the block is still open; ``self._cursor`` may remember progress."""
        raise NotImplementedError

    @classmethod
    def call_tags(cls, name: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
        """xgrammar tags for one call to ``name`` as this format writes it, each
        beginning with one of :attr:`call_triggers` (only formats that have them)."""
        raise NotImplementedError

    @classmethod
    def section_tags(cls, calls: list[dict[str, Any]], single: bool) -> list[dict[str, Any]]:
        """The tags a reply's calls are written in: each call alone, unless the format
        wraps its calls in one section."""
        return calls

    def _find_end(self, body: str, marker: str) -> int | None:
        """Where ``marker`` (a block's closing text) starts in ``body``, or None while it
        has not come; each call searches only text a marker could newly end in."""
        at = body.find(marker, self._cursor)
        if at < 0:
            self._cursor = max(0, len(body) - len(marker) + 1)
            return None
        return at

    # -- the shared machine -----------------------------------------------------------

    def feed(self, text: str) -> ParsedDelta:
        if self._state == "content" and not self._pending and not self._search.could_start(text):
            return ParsedDelta(content=text)
        self._pending += text
        out = ParsedDelta()
        while self._step(out):
            pass
        return out

    def finish(self) -> ParsedDelta:
        rest, self._pending = self._pending, ""
        if self._state == "inside":
            rest = self._opened + rest
        elif self._state == "sniff" and self._numbering.count and not rest.strip():
            rest = ""
        self._state = "content"
        return ParsedDelta(content=rest)

    def _step(self, out: ParsedDelta) -> bool:
        """One transition; False when it needs more text."""
        if self._state == "sniff":
            return self._step_sniff()
        if self._state == "content":
            safe, marker, self._pending = self._search.split(self._pending)
            out.content += safe
            if marker is None:
                return False
            self._enter_block(marker)
            return True
        closed = self._close(self._pending)
        if closed is None:
            return False
        calls, end = closed
        if calls is not None and not self._all_allowed(calls):
            calls = None
        if calls is None:
            out.content += self._opened + self._pending[:end]
            self._state = "content"
        else:
            out.tool_calls = [*out.tool_calls, *self._numbering.deltas(calls)]
            self._state = "sniff"
        self._pending = self._pending[end:]
        return True

    def _all_allowed(self, calls: list[ParsedCall]) -> bool:
        """A call to a function the request did not declare (a ``<tool_call>`` quoted in
        a code block, a hallucinated tool), or a strict call that does not match its
        schema, is not a call: the block stays content."""
        if self._declared is not None and any(call.name not in self._declared for call in calls):
            return False
        return self._strict is None or all(map(self._strict.allows, calls))

    def _step_sniff(self) -> bool:
        head = self._pending.lstrip()
        if not head:
            return False
        opener = self._sniff(head)
        if opener is None:
            return False
        if opener < 0:
            self._state = "content"
            if self._numbering.count:
                self._pending = head  # whitespace after a call is dropped
            return True
        self._pending = head[opener:]
        self._enter_block(head[:opener])
        return True

    def _enter_block(self, opened: str) -> None:
        self._state = "inside"
        self._opened = opened
        self._cursor = 0

    def _decode_when_closed(self, body: str, start: int = 0) -> tuple[Any, int] | None:
        """The JSON value at ``body[start:]`` (leading whitespace skipped) and where it
        ends in ``body``; decoded only when a closing bracket arrived since the last
        try, so a long value costs one decode per bracket, not one per delta."""
        if _CLOSER.search(body, max(start, self._cursor)) is None:
            self._cursor = len(body)
            return None
        self._cursor = len(body)
        head = body[start:].lstrip()
        decoded = decode_json_prefix(head)
        if decoded is None:
            return None
        value, end = decoded
        return value, len(body) - len(head) + end


def call_from_object(
    value: Any,
    arguments_keys: tuple[str, ...] = ("arguments", "parameters"),
    holes: Sequence[Hole] = (),
) -> ParsedCall:
    """``{"name": ..., "arguments": {...}}`` as a call; ValueError if it is not one.

    Arguments given as a JSON string holding an object (some models do) are accepted,
    and so is ``"parameters"`` for ``"arguments"`` (the llama3_json spelling, which
    models trained on both formats mix up): the first key of ``arguments_keys`` present
    wins. A call with neither key takes no arguments (``{}``). ``holes``: ``value`` was
    decoded from a skeleton (see :mod:`.assembly`).
    """
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ValueError("not a tool call object")
    arguments = next((value[key] for key in arguments_keys if key in value), {})
    if isinstance(arguments, str):
        arguments, holes = jsondecode.loads(arguments), ()
    return call_with_arguments(value["name"], arguments, holes)


def call_with_arguments(name: str, arguments: Any, holes: Sequence[Hole] = ()) -> ParsedCall:
    """:meth:`ParsedCall.of` for decoded arguments, which may be a placeholder for an
    object already serialised in pieces; ValueError if they are not an object."""
    hole = hole_at(arguments, holes)
    if hole is not None and hole.kind == "{":
        return ParsedCall(name, hole.text)
    if not isinstance(arguments, dict):
        raise ValueError("tool call arguments are not an object")
    return ParsedCall.of(name, arguments, holes)


_CLOSER = re.compile(r"[]}]")


def decode_json_prefix(text: str) -> tuple[Any, int] | None:
    """The JSON value at the start of ``text`` and where it ends; None if incomplete
    or invalid (both look the same to a stream: wait for more, or give up at the end)."""
    try:
        return jsondecode.raw_decode(text)
    except json.JSONDecodeError:
        return None
