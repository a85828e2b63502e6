"""argparse value types that both command lines use (``serve`` and ``bench``).

Kept apart from both so that neither CLI imports the other for a parser; stdlib and
orjson only, as every CLI start imports it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import orjson


def json_object(value: str) -> dict:
    """A flag's value that must be one JSON object, e.g. ``--engine-args`` or
    ``--extra-body``. argparse names the flag in front of the message (``argument
    --extra-body: expected a JSON object``). orjson, because bench sends the object with
    it: what it cannot read (NaN, integers past 64 bits) is refused here, not mid-run."""
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return parsed


def _bounded(kind: type, expected: str, fits: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: ``kind(value)``, finite and ``fits``; otherwise argparse exits
    with ``argument --flag: expected <expected>, got '<value>'`` before anything loads,
    instead of a server that answers every request with an error."""

    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or not fits(number):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return number

    return parse


#: A count that must be at least 1 (a slot count, a byte cap).
positive_int = _bounded(int, "a positive integer", lambda number: number > 0)
#: A count where 0 has a meaning (``--max-queued-requests 0``: nobody waits).
non_negative_int = _bounded(int, "an integer >= 0", lambda number: number >= 0)
#: Seconds that must pass before something happens (a timeout).
positive_float = _bounded(float, "a positive number", lambda number: number > 0)
#: Seconds where 0 means "at once" (``--drain-timeout 0``).
non_negative_float = _bounded(float, "a number >= 0", lambda number: number >= 0)
