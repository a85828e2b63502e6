"""JSON text decoded with one rule for nesting: too deep to decode is invalid JSON.

Python's JSON decoder recurses once per level of nesting, so text nested deeper than
the recursion limit (about 1,000 levels: a few KB of ``[``) raises ``RecursionError``,
which is no ``ValueError``. Code that treats invalid JSON as the sender's mistake (a 400
naming the field, or a model's markup returned as content) would let it through as a
500. These raise :class:`json.JSONDecodeError` instead, so one except clause covers
both, wherever a client or a model wrote the text.
"""

from __future__ import annotations

import json
from typing import Any

_DECODER = json.JSONDecoder()


def loads(text: str) -> Any:
    """:func:`json.loads`, with nesting too deep to decode as a ``JSONDecodeError``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise _too_deep(text) from None


def raw_decode(text: str) -> tuple[Any, int]:
    """The JSON value at the start of ``text`` and where it ends
    (:meth:`json.JSONDecoder.raw_decode`), with the same rule for nesting."""
    try:
        return _DECODER.raw_decode(text)
    except RecursionError:
        raise _too_deep(text) from None


def _too_deep(text: str) -> json.JSONDecodeError:
    return json.JSONDecodeError("JSON nested too deeply to decode", text, 0)
