"""``openai``: gpt-oss's harmony messages (vLLM's name for the format).

After the generation prompt ``<|start|>assistant`` the model writes one or more
messages, each a header, ``<|message|>`` and a body::

    <|channel|>analysis<|message|>The user wants the weather.<|end|>
    <|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json
    <|message|>{"city": "Paris"}

(the call's header on one line), or a final answer::

    <|start|>assistant<|channel|>final<|message|>It is sunny.

The ``analysis`` channel is reasoning; a message to ``functions.NAME`` (``to=`` before
or after the channel) is a call, its body the arguments; anything else (``final``, a
preamble in ``commentary``) is content. A body ends at ``<|end|>``, ``<|call|>``,
``<|return|>``, the next ``<|start|>`` or the end of the reply (``<|call|>`` and
``<|return|>`` are stop tokens, so usually the latter).

The markers are special tokens: gpt-oss requests keep them (``skip_special_tokens:
false``, see :mod:`openai_frontend.chat_tools`). Text whose first 256 characters hold no
``<|message|>`` is not harmony: all of it is content. A call whose body is not a JSON
object, or names an undeclared function, is content, its header included.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection

from openai_frontend.parsing.base import CallNumbering, ParsedCall, ParsedDelta
from openai_frontend.parsing.strict import StrictSchemas
from openai_frontend.textstream import MarkerSearch

MESSAGE = "<|message|>"
START = "<|start|>"
#: What ends a message's body.
ENDS = ("<|end|>", "<|call|>", "<|return|>", START)
_LONGEST_END = max(map(len, ENDS))
#: How far into a header ``<|message|>`` must come for the text to be harmony.
HEADER_LIMIT = 256
_RECIPIENT = re.compile(r"to=functions\.([^\s<]+)")
_CHANNEL = re.compile(r"<\|channel\|>\s*(\w+)")


class HarmonyToolParser:
    """A :class:`~openai_frontend.parsing.base.ToolParser` that also emits reasoning.

    No grammar holds its strict calls (:attr:`call_triggers` is empty): a call's header
    has several spellings (``to=`` before or after the channel, with or without
    ``<|constrain|>``), so strict calls are checked after the fact.
    """

    call_triggers: tuple[str, ...] = ()

    def __init__(
        self, declared: Collection[str] | None = None, strict: StrictSchemas | None = None
    ) -> None:
        self._declared = frozenset(declared) if declared is not None else None
        self._strict = strict
        self._ends = MarkerSearch(ENDS)
        self._numbering = CallNumbering()
        self._pending = ""
        #: ``header``, ``reasoning``, ``content``, ``call`` (body) or ``plain``.
        self._state = "header"
        self._header = ""
        self._callee = ""
        #: How far a call's body has been searched for its end.
        self._cursor = 0

    def feed(self, text: str) -> ParsedDelta:
        if self._state == "plain":
            return ParsedDelta(content=text)
        self._pending += text
        out = ParsedDelta()
        while self._step(out):
            pass
        return out

    def finish(self) -> ParsedDelta:
        out = ParsedDelta()
        rest, self._pending = self._pending, ""
        if self._state == "call":
            self._end_call(rest, out)
        elif self._state == "reasoning":
            out.reasoning += rest
        else:
            out.content += rest
        self._state = "header"
        return out

    def _step(self, out: ParsedDelta) -> bool:
        """One transition; False when it needs more text."""
        if self._state == "header":
            return self._step_header(out)
        if self._state == "call":
            return self._step_call(out)
        safe, marker, self._pending = self._ends.split(self._pending)
        if self._state == "reasoning":
            out.reasoning += safe
        else:
            out.content += safe
        if marker is None:
            return False
        self._state = "header"
        return True

    def _step_header(self, out: ParsedDelta) -> bool:
        at = self._pending.find(MESSAGE, 0, HEADER_LIMIT)
        if at < 0:
            if len(self._pending) < HEADER_LIMIT:
                return False
            out.content += self._pending
            self._pending, self._state = "", "plain"
            return False
        self._header = self._pending[: at + len(MESSAGE)]
        self._pending = self._pending[at + len(MESSAGE) :]
        self._state = self._kind(self._header)
        self._cursor = 0
        return True

    def _kind(self, header: str) -> str:
        recipient = _RECIPIENT.search(header)
        if recipient is not None:
            self._callee = recipient.group(1)
            return "call"
        channel = _CHANNEL.search(header)
        if channel is not None and channel.group(1) == "analysis":
            return "reasoning"
        return "content"

    def _step_call(self, out: ParsedDelta) -> bool:
        """A call's body is buffered until it ends; each delta is searched once (from
        where a marker could still have started), so a long body costs linear time."""
        start = max(0, self._cursor - _LONGEST_END + 1)
        self._cursor = len(self._pending)
        hits = [(at, end) for end in ENDS if (at := self._pending.find(end, start)) >= 0]
        if not hits:
            return False
        at, marker = min(hits)
        self._end_call(self._pending[:at], out)
        self._pending = self._pending[at + len(marker) :]
        self._state = "header"
        return True

    def _end_call(self, body: str, out: ParsedDelta) -> None:
        call = self._call(body)
        if call is None:
            out.content += self._header + body
        else:
            out.tool_calls = [*out.tool_calls, *self._numbering.deltas([call])]

    def _call(self, body: str) -> ParsedCall | None:
        if self._declared is not None and self._callee not in self._declared:
            return None
        try:
            arguments = json.loads(body)
            if not isinstance(arguments, dict):
                return None
            call = ParsedCall.of(self._callee, arguments)
        except ValueError:  # json.JSONDecodeError is a ValueError
            return None
        return call if self._strict is None or self._strict.allows(call) else None
