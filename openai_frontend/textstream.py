"""Streaming text assembly: incremental detokenization and stop strings, engine-neutral.

Two small state machines, each fed one step at a time:

* :class:`IncrementalDetokenizer` turns token ids into text deltas that never end
  inside a character: a byte-level token that holds half of a multi-byte UTF-8
  character yields nothing until the character is complete.
* :class:`StopStringCutter` holds back text that could still become the start of a
  stop string, cuts the output at the first stop string, and so never lets a stop
  string (or a piece of one) leak into a chunk.

The frontend applies the cutter itself for an engine that does not declare ``stop``
support; the property tests hold both to "the concatenated stream equals the
non-streamed result".
"""

from __future__ import annotations

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


class StopStringCutter:
    """Cuts streamed text at the first stop string, never emitting a possible prefix."""

    def __init__(self, stops: Sequence[str], include_stop: bool = False) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._include = include_stop
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped or not self._stops:
            return "" if self.stopped else text
        pending = self._pending + text
        hit = self._first_stop(pending)
        if hit is not None:
            at, stop = hit
            self.stopped = True
            self._pending = ""
            return pending[: at + len(stop)] if self._include else pending[:at]
        keep = self._held_back(pending)
        self._pending = pending[len(pending) - keep :]
        return pending[: len(pending) - keep]

    def flush(self) -> str:
        """The held-back tail, once generation ended without reaching a stop string."""
        text, self._pending = self._pending, ""
        return "" if self.stopped else text

    def _first_stop(self, text: str) -> tuple[int, str] | None:
        found = [(text.find(stop), stop) for stop in self._stops]
        found = [(at, stop) for at, stop in found if at >= 0]
        return min(found, key=lambda hit: hit[0]) if found else None

    def _held_back(self, text: str) -> int:
        """Length of the longest tail of ``text`` that starts some stop string."""
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
