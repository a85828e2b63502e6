"""Streaming text assembly: incremental detokenization and stop strings, engine-neutral.

Two small state machines, each fed one step at a time:

* :class:`IncrementalDetokenizer` turns token ids into text deltas that never end
  inside a character: a byte-level token that holds half of a multi-byte UTF-8
  character yields nothing until the character is complete.
* :class:`StopStringCutter` holds back text that could still become the start of a
  stop string, cuts the output at the first stop string, and so never lets a stop
  string (or a piece of one) leak into a chunk. Its hold-back, :class:`MarkerSearch`,
  is shared with the output parsers (``openai_frontend.parsing``).

The frontend applies the cutter itself for an engine that does not declare ``stop``
support; the property tests hold both to "the concatenated stream equals the
non-streamed result".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Text deltas from token ids, decoding a sliding window as vLLM and TGI do.

    The window (``prefix`` .. end) keeps a few tokens of left context, so tokenizers
    that change a token's text by its neighbours (leading spaces) decode right.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def feed(self, token_ids: Sequence[int]) -> str:
        self._ids.extend(token_ids)
        before = self._decode(self._ids[self._prefix : self._read])
        text = self._decode(self._ids[self._prefix :])
        if text.endswith(REPLACEMENT) or len(text) <= len(before):
            return ""  # an incomplete character: wait for the bytes that finish it
        self._prefix, self._read = self._read, len(self._ids)
        return text[len(before) :]

    def flush(self) -> str:
        """At the end, whatever is left (a dangling partial character included)."""
        before = self._decode(self._ids[self._prefix : self._read])
        text = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return text[len(before) :]


class MarkerSearch:
    """Finds markers in streamed text and the tail that could still grow into one.

    The one hold-back mechanism of the frontend: stop strings use it, and so do the
    output parsers (``<think>``, ``<tool_call>``, ``[TOOL_CALLS]``), so that no marker,
    nor a piece of one at a chunk's end, ever leaks into the text a client sees.
    """

    def __init__(self, markers: Sequence[str]) -> None:
        self.markers = tuple(marker for marker in markers if marker)
        starts = "".join(sorted({re.escape(marker[0]) for marker in self.markers}))
        self._start = re.compile(f"[{starts}]").search if starts else None

    def could_start(self, text: str) -> bool:
        """False when no marker can begin anywhere in ``text``: the per-delta fast path."""
        return self._start is not None and self._start(text) is not None

    def first(self, text: str) -> tuple[int, str] | None:
        """Where the earliest marker in ``text`` starts, and which (the first listed on a tie)."""
        best: tuple[int, str] | None = None
        for marker in self.markers:
            at = text.find(marker)
            if at >= 0 and (best is None or at < best[0]):
                best = (at, marker)
        return best

    def held_back(self, text: str) -> int:
        """Length of the longest tail of ``text`` that starts some marker (but is not one)."""
        longest = 0
        for marker in self.markers:
            for size in range(min(len(marker) - 1, len(text)), longest, -1):
                if text.endswith(marker[:size]):
                    longest = size
                    break
        return longest

    def split(self, text: str) -> tuple[str, str | None, str]:
        """``(safe, marker, rest)``: text before the first marker, the marker, what follows.

        With no marker in ``text``, ``rest`` is the held-back tail that may still become
        one; the caller keeps it and prepends it to the next delta.
        """
        if not self.could_start(text):
            return text, None, ""
        hit = self.first(text)
        if hit is not None:
            at, marker = hit
            return text[:at], marker, text[at + len(marker) :]
        keep = self.held_back(text)
        return text[: len(text) - keep], None, text[len(text) - keep :]


class StopStringCutter:
    """Cuts streamed text at the first stop string, never emitting a possible prefix."""

    def __init__(self, stops: Sequence[str], include_stop: bool = False) -> None:
        self._search = MarkerSearch(stops)
        self._include = include_stop
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped or not self._search.markers:
            return "" if self.stopped else text
        safe, stop, rest = self._search.split(self._pending + text)
        if stop is None:
            self._pending = rest
            return safe
        self.stopped = True
        self._pending = ""
        return safe + stop if self._include else safe

    def flush(self) -> str:
        """The held-back tail, once generation ended without reaching a stop string."""
        text, self._pending = self._pending, ""
        return "" if self.stopped else text
