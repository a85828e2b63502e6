"""Incremental scanners: where a bracketed tool call ends, each character read once.

A call block is parsed (``json``, ``ast``) only once it has closed. Finding where it
closes must not re-read the block at every delta: a long call would then cost time
quadratic in its length, on the event loop. A scanner keeps its place in the growing
block text (bracket stack, string and comment state) and jumps over runs of characters
that cannot matter with one regular expression search, so each delta costs work in
proportion to its own length.

A scanner also says as soon as the text can no longer be the value it looks for
(prose that merely starts with ``[`` or ``{``), so that the parser gives the block up
and streams it as content at once instead of holding it to the end of the reply. It
says so only when no continuation could make the value valid, so the parser's verdict
is the full parse's; and each decision depends on the text alone, never on where the
deltas were cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from openai_frontend.parsing.assembly import Assembly


@dataclass(frozen=True, slots=True)
class Boundary:
    """Where a scan ended for good.

    ``closed``: the value's outer bracket closed just before ``end``: parse
    ``text[start:end]``. Otherwise the text stopped being such a value at ``end`` (the
    first character no valid value could have there).
    """

    end: int
    closed: bool
    start: int = 0


#: ``Boundary`` to stop, True to keep scanning, False to wait for more text.
Step = Boundary | bool

_PAIRS = {")": "(", "]": "[", "}": "{"}

#: Before the value, any whitespace (``str.strip``'s): JSON's own is checked by the decoder.
_SPACE = re.compile(r"\s*")
#: Outside strings, the next character that matters: a bracket, a quote, or one that no
#: JSON text has outside its strings (``NaN`` and ``Infinity`` are Python's extensions).
_JSON_OUTSIDE = re.compile(r"[^ \t\n\r,:0-9.eE+\-truefalsnNIiy]")
#: The same, stopping at commas too (for an :class:`Assembly`).
_JSON_OUTSIDE_OR_COMMA = re.compile(r"[^ \t\n\r:0-9.eE+\-truefalsnNIiy]")
#: Inside a string: its end, an escape, or a raw control character (invalid JSON).
_JSON_INSIDE = re.compile(r'["\\\x00-\x1f]')


class JsonScan:
    """Finds the end of one JSON object or array that starts at ``start`` (after
    optional whitespace) with one of ``openers``; tells ``assembly`` its brackets and
    commas."""

    def __init__(
        self, start: int = 0, openers: str = "{[", assembly: Assembly | None = None
    ) -> None:
        self.at = start
        #: Where the value's opening bracket is, once seen.
        self.start = start
        self._openers = openers
        self._stack: list[str] = []
        self._in_string = False
        self._assembly = assembly
        self._outside = _JSON_OUTSIDE if assembly is None else _JSON_OUTSIDE_OR_COMMA

    def scan(self, text: str) -> Boundary | None:
        """None while the value is still open; call again with the same text, grown."""
        while True:
            step = self._step(text)
            if step is False:
                return None
            if step is not True:
                return step

    def _step(self, text: str) -> Step:
        if self._in_string:
            return self._string(text)
        if not self._stack:
            return self._opening(text)
        hit = self._outside.search(text, self.at)
        if hit is None:
            self.at = len(text)
            return False
        at = hit.start()
        char = text[at]
        self.at = at + 1
        if char == '"':
            self._in_string = True
        elif char == ",":  # searched for only with an assembly
            if self._assembly is not None:
                self._assembly.comma(text, at)
        elif char in "{[":
            self._push(char, at)
        elif char in "}]":
            if self._stack.pop() != _PAIRS[char]:
                return Boundary(at, closed=False)
            if self._assembly is not None:
                self._assembly.closed(text, at)
            if not self._stack:
                return Boundary(at + 1, closed=True, start=self.start)
        else:
            return Boundary(at, closed=False)
        return True

    def _push(self, char: str, at: int) -> None:
        self._stack.append(char)
        if self._assembly is not None:
            self._assembly.opened(char, at)

    def _opening(self, text: str) -> Step:
        at = _SPACE.match(text, self.at).end()
        self.at = at
        if at == len(text):
            return False
        if text[at] not in self._openers:
            return Boundary(at, closed=False)
        self._push(text[at], at)
        self.start, self.at = at, at + 1
        return True

    def _string(self, text: str) -> Step:
        hit = _JSON_INSIDE.search(text, self.at)
        if hit is None:
            self.at = len(text)
            return False
        at = hit.start()
        char = text[at]
        if char == '"':
            self._in_string = False
            self.at = at + 1
            return True
        if char == "\\":
            if at + 1 == len(text):
                self.at = at
                return False
            self.at = at + 2
            return True
        return Boundary(at, closed=False)


_PY_SPACE = re.compile(r"[ \t\f\r\n]*")
_PY_NAME_START = re.compile(r"[^\W\d]")
_PY_NAME_REST = re.compile(r"\w*")
_PY_LINE_END = re.compile(r"[\r\n]")
#: Inside an argument's value, what matters: strings, comments, brackets, commas.
_PY_IN_VALUE = re.compile(r"[\"'#()\[\]{},]")
#: Inside a string: its quote, an escape, or (single-quoted) a line end.
_PY_STRING_STOPS = {
    "'": re.compile(r"[\\'\n]"),
    '"': re.compile(r'[\\"\n]'),
    "'''": re.compile(r"[\\']"),
    '"""': re.compile(r'[\\"]'),
}
#: The call-list grammar outside argument values: state -> {character: next state}.
#: ``name`` means an identifier starts there; ``close`` that the list ends.
_PY_GRAMMAR: dict[str, dict[str, str]] = {
    "list": {"[": "item"},
    "item": {"name": "callee", "]": "close"},  # a call, or the end (``[]``, trailing comma)
    "callee": {".": "dot", "(": "key"},
    "dot": {"name": "callee"},
    "called": {",": "item", "]": "close"},
    "key": {"name": "eq", ")": "called"},  # a keyword, or the end of the arguments
    "eq": {"=": "value"},
}


class PythonCallListScan:
    """Finds the end of a Python list of calls, ``[f(a=1), m.g(b=[2], c="]")]``.

    Tracks Python's tokens (brackets, strings of all four quotings, comments, line
    continuations) and the shape of a call list outside argument values: a dotted name,
    ``(``, ``keyword=value`` pairs, ``)``, commas. Anything else there (``[Note: I'm``,
    ``[1] is``, a positional argument) gives the list up: no continuation could make it
    a list of keyword-only calls. Argument values are only bracket- and string-matched;
    whether they are literals is the full parse's job. ``assembly`` is told the
    brackets, and the commas inside argument values.
    """

    def __init__(self, assembly: Assembly | None = None) -> None:
        self.at = 0
        self._assembly = assembly
        self._stack: list[str] = []
        self._state = "list"
        self._after_name = ""
        self._quote = ""
        self._comment = False

    def scan(self, text: str) -> Boundary | None:
        """None while the list is still open; call again with the same text, grown."""
        while True:
            step = self._step(text)
            if step is False:
                return None
            if step is not True:
                return step

    def _step(self, text: str) -> Step:
        if self._quote:
            return self._string(text)
        if self._comment:
            return self._skip_comment(text)
        if self._state == "name":
            return self._name(text)
        if self._state == "value":
            return self._value(text)
        return self._grammar(text)

    def _grammar(self, text: str) -> Step:
        at = _PY_SPACE.match(text, self.at).end()
        self.at = at
        if at == len(text):
            return False
        char = text[at]
        if char == "#":
            self._comment, self.at = True, at + 1
            return True
        if char == "\\":
            return self._continuation(text, at)
        token = "name" if _PY_NAME_START.match(char) else char
        follow = _PY_GRAMMAR[self._state].get(token)
        if follow is None:
            return Boundary(at, closed=False)
        self.at = at + 1
        if token == "name":
            self._state, self._after_name = "name", follow
            return True
        if char in "([":
            self._push(char, at)
        elif char in ")]":
            self._pop(text, at)
        self._state = follow
        return Boundary(at + 1, closed=True) if follow == "close" else True

    def _continuation(self, text: str, at: int) -> Step:
        """A backslash outside strings must end its line (an explicit line join)."""
        if at + 1 == len(text):
            return False
        if text[at + 1] not in "\r\n":
            return Boundary(at, closed=False)
        self.at = at + 2
        return True

    def _name(self, text: str) -> Step:
        self.at = _PY_NAME_REST.match(text, self.at).end()
        if self.at == len(text):
            return False  # the name may go on
        self._state = self._after_name
        return True

    def _value(self, text: str) -> Step:
        hit = _PY_IN_VALUE.search(text, self.at)
        if hit is None:
            self.at = len(text)
            return False
        at = hit.start()
        char = text[at]
        self.at = at + 1
        if char in "'\"":
            return self._open_string(text, at)
        if char == "#":
            self._comment = True
        elif char in "([{":
            self._push(char, at)
        elif char == ",":
            if len(self._stack) == 2:
                self._state = "key"
            elif self._assembly is not None:
                self._assembly.comma(text, at)
        elif self._stack[-1] != _PAIRS[char]:
            return Boundary(at, closed=False)
        else:
            self._pop(text, at)
            if len(self._stack) == 1:
                self._state = "called"  # the call's own ")"
        return True

    def _push(self, char: str, at: int) -> None:
        self._stack.append(char)
        if self._assembly is not None:
            self._assembly.opened(char, at)

    def _pop(self, text: str, at: int) -> None:
        self._stack.pop()
        if self._assembly is not None:
            self._assembly.closed(text, at)

    def _open_string(self, text: str, at: int) -> Step:
        quote = text[at]
        rest = text[at : at + 3]
        if len(rest) < 3 and rest == quote * len(rest):
            self.at = at
            return False  # ' or '' so far: an empty string or a triple quote
        self._quote = quote * 3 if rest == quote * 3 else quote
        self.at = at + len(self._quote)
        return True

    def _string(self, text: str) -> Step:
        hit = _PY_STRING_STOPS[self._quote].search(text, self.at)
        if hit is None:
            self.at = len(text)
            return False
        at = hit.start()
        char = text[at]
        if char == "\\":
            return self._escape(text, at)
        if char == "\n":
            return Boundary(at, closed=False)  # a one-line string cut by its line's end
        if len(self._quote) == 3 and not text.startswith(self._quote, at):
            if len(text) - at < 3 and text[at:] == char * (len(text) - at):
                self.at = at
                return False  # maybe the closing triple quote, cut
            self.at = at + 1
            return True
        self.at = at + len(self._quote)
        self._quote = ""
        return True

    def _escape(self, text: str, at: int) -> Step:
        """A backslash takes the next character; ``\\`` + CRLF joins a line."""
        taken = text[at + 1 : at + 3]
        if taken in ("", "\r"):
            self.at = at
            return False
        self.at = at + (3 if taken == "\r\n" else 2)
        return True

    def _skip_comment(self, text: str) -> Step:
        hit = _PY_LINE_END.search(text, self.at)
        if hit is None:
            self.at = len(text)
            return False
        self._comment, self.at = False, hit.end()
        return True
