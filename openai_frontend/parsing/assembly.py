"""A long call decoded and re-serialised piece by piece while it streams.

A call block is decoded once, when its brackets close (see :mod:`.scanning`). Decoding
and re-serialising (``json.dumps``) a 120 KB call at that moment would cost one delta
milliseconds of the event loop (85 ms for Python literals through ``ast``). So, while
the scanner reads the call, each long container inside it is done in pieces: at one of
its own commas, once the text read since its last piece passes a size, the items so
far are decoded and serialised exactly as the whole would be, into a piece of its
canonical text. When the container closes, its pieces are joined and it becomes a
*hole*: in the text its parent decodes later (the *skeleton*), it stands as a small
placeholder, ``["\\u0000", 3]``, whose serialisation is swapped for the hole's text
(:func:`fill`). The delta that closes the call decodes only the skeleton.

The result is the whole decode's, character for character, or nothing: whenever a
piece could differ from the whole (a piece that does not decode, a key repeated across
pieces, a string that may hold NUL like the placeholders, nesting deep enough for the
whole decode to recurse out), the assembly gives up and the parser decodes the whole
text as before.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from openai_frontend.gc_pause import gc_paused

#: Characters of a container's own text (its holes not counted) that make a piece: a
#: piece costs about 0.2 ms (JSON: ``json.loads`` and ``json.dumps`` of 8 KB; Python:
#: ``ast`` parses some 3 characters per microsecond).
JSON_PIECE = 8192
PYTHON_PIECE = 512
#: Deeper nesting is left to the whole decode, which may refuse it (``RecursionError``).
MAX_DEPTH = 64

_PLACEHOLDER = re.compile(r'\["\\u0000", (\d+)\]')
_PY_NUL_SPELLINGS = ("\\0", "\\u0000", "\\U0000", "\\N{", "\x00")


@dataclass(frozen=True, slots=True)
class Hole:
    """A closed container of ``text[start:end]``, serialised: ``"["`` or ``"{"`` kind."""

    start: int
    end: int
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Skeleton:
    """A value's text with its long containers replaced by placeholders for ``holes``
    (none: the value's own text, to decode as a whole)."""

    text: str
    holes: tuple[Hole, ...] = ()


@dataclass(frozen=True, slots=True)
class Dialect:
    """How pieces of one language are decoded, and how a placeholder is written in it."""

    decode: Callable[[str], Any]
    placeholder: str
    #: Whether a skeleton holding ``count`` placeholders holds no other NUL character.
    clean: Callable[[str, int], bool]


def _json_clean(skeleton: str, count: int) -> bool:
    return skeleton.count("\\u0000") == count  # JSON spells NUL only so


def _python_clean(skeleton: str, count: int) -> bool:
    return skeleton.count("\\x00") == count and not any(
        spelling in skeleton for spelling in _PY_NUL_SPELLINGS
    )


JSON = Dialect(json.loads, '["\\u0000", %d]', _json_clean)
PYTHON = Dialect(ast.literal_eval, '["\\x00", %d]', _python_clean)


@dataclass(slots=True)
class _Frame:
    opener: str
    start: int
    #: Where the text not yet in a piece starts.
    mark: int
    #: The pieces so far; None for a container never cut (one the parser reads).
    pieces: list[str] | None
    holes: list[Hole] = field(default_factory=list)
    #: Characters of ``text[mark:]`` inside ``holes``.
    hidden: int = 0
    keys: set[Any] = field(default_factory=set)


class _GiveUp(Exception):
    """A piece could differ from the whole: the whole text is decoded at the end."""


class Assembly:
    """Follows one value's brackets and commas (told by its scanner) and cuts its
    containers nested ``cut_from`` deep or deeper (the value itself is depth 1) into
    pieces. ``skeleton`` then gives the text to decode when the value has closed."""

    def __init__(self, dialect: Dialect, cut_from: int) -> None:
        self._dialect = dialect
        self._cut_from = cut_from
        self._piece = JSON_PIECE if dialect is JSON else PYTHON_PIECE
        self._stack: list[_Frame] = []
        self._top: _Frame | None = None
        self._failed = False

    def opened(self, opener: str, at: int) -> None:
        if self._failed:
            return
        depth = len(self._stack) + 1
        if depth > MAX_DEPTH:
            self._failed = True
            return
        pieces: list[str] | None = [] if depth >= self._cut_from else None
        self._stack.append(_Frame(opener, at, at + 1, pieces))

    def comma(self, text: str, at: int) -> None:
        """A comma at ``at`` that separates items of the innermost open container."""
        if self._failed or not self._stack:
            return
        frame = self._stack[-1]
        if frame.pieces is None or at - frame.mark - frame.hidden < self._piece:
            return
        self._guarded(self._cut, text, frame, at)

    def closed(self, text: str, at: int) -> None:
        """The innermost open container's closing bracket is at ``at``."""
        if self._failed:
            return
        frame = self._stack.pop()
        parent = self._stack[-1] if self._stack else None
        if parent is None:
            self._top = frame
        elif frame.pieces:
            hole = self._guarded(self._finish, text, frame, at)
            if hole is not None:
                parent.holes.append(hole)
                parent.hidden += hole.end - hole.start
        else:
            parent.holes += frame.holes
            parent.hidden += frame.hidden

    def skeleton(self, text: str, start: int, end: int) -> Skeleton:
        """What to decode for the value at ``text[start:end]``, now closed: a lone
        placeholder if the value itself was cut (``cut_from=1``)."""
        top = self._top
        if not self._failed and top is not None and top.pieces:
            hole = self._guarded(self._finish, text, top, end - 1)
            if hole is not None:
                return Skeleton(self._dialect.placeholder % 0, (hole,))
        if self._failed or top is None or not top.holes:
            return Skeleton(text[start:end])
        skeleton = self._with_placeholders(text, start, end, top.holes)
        if skeleton is None:
            return Skeleton(text[start:end])
        return Skeleton(skeleton, tuple(top.holes))

    # -- pieces -----------------------------------------------------------------------

    def _guarded(self, step: Callable[..., Any], *args: Any) -> Any:
        try:
            return step(*args)
        except (_GiveUp, SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
            self._failed = True
            return None

    def _cut(self, text: str, frame: _Frame, at: int) -> None:
        piece = self._piece_of(text, frame, at)
        if not piece:
            raise _GiveUp("an empty item")
        assert frame.pieces is not None
        frame.pieces.append(piece)
        frame.mark, frame.holes, frame.hidden = at + 1, [], 0

    def _finish(self, text: str, frame: _Frame, at: int) -> Hole:
        piece = self._piece_of(text, frame, at)
        assert frame.pieces is not None
        if piece:
            frame.pieces.append(piece)
        elif self._dialect is JSON:
            raise _GiveUp("a trailing comma")  # Python allows one
        kind, closer = _brackets(frame.opener)
        return Hole(frame.start, at + 1, kind, kind + ", ".join(frame.pieces) + closer)

    def _piece_of(self, text: str, frame: _Frame, at: int) -> str:
        """The canonical text of the items in ``text[frame.mark:at]``, brackets cut."""
        kind, closer = _brackets(frame.opener)
        inner = self._with_placeholders(text, frame.mark, at, frame.holes)
        if inner is None:
            raise _GiveUp("NUL in a string")
        with gc_paused():  # a piece's objects live for one decode
            value = self._dialect.decode(kind + inner + closer)
            if kind == "{":  # a dict (a Python set fails json.dumps below)
                if not frame.keys.isdisjoint(value):
                    raise _GiveUp("a key repeated across pieces")
                frame.keys.update(value)
            serialised = json.dumps(value, ensure_ascii=False, allow_nan=False)
        return fill(serialised, frame.holes)[1:-1]

    def _with_placeholders(
        self, text: str, begin: int, end: int, holes: Sequence[Hole]
    ) -> str | None:
        parts, at = [], begin
        for index, hole in enumerate(holes):
            parts += (text[at : hole.start], self._dialect.placeholder % index)
            at = hole.end
        parts.append(text[at:end])
        joined = "".join(parts)
        return joined if self._dialect.clean(joined, len(holes)) else None


def _brackets(opener: str) -> tuple[str, str]:
    """A Python tuple's items are a list's, and serialise as a list."""
    return ("{", "}") if opener == "{" else ("[", "]")


def fill(serialised: str, holes: Sequence[Hole]) -> str:
    """``json.dumps`` of a decoded skeleton, each placeholder replaced by its hole."""
    if not holes:
        return serialised
    parts = _PLACEHOLDER.split(serialised)
    parts[1::2] = [holes[int(index)].text for index in parts[1::2]]
    return "".join(parts)


def hole_at(value: Any, holes: Sequence[Hole]) -> Hole | None:
    """The hole that a decoded placeholder stands for, if ``value`` is one."""
    if holes and isinstance(value, list) and len(value) == 2 and value[0] == "\x00":
        return holes[value[1]]
    return None
