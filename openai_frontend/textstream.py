"""Marker search in streamed text: the one hold-back mechanism of the frontend.

The output parsers (``openai_frontend.parsing``) find ``<think>``, ``<tool_call>`` or
``[TOOL_CALLS]`` in text that arrives a few characters at a time. :class:`MarkerSearch`
finds the first marker and holds back any tail that could still grow into one, so no
marker, nor a piece of one at a chunk's end, ever reaches the client as content. (Every
engine detokenizes and applies stop strings itself, so the frontend needs no
detokenizer or stop-string cutter of its own.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence


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
