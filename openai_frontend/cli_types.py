"""argparse value types that both command lines use (``serve`` and ``bench``).

Kept apart from both so that neither CLI imports the other for a parser; stdlib and
orjson only, as every CLI start imports it.
"""

from __future__ import annotations

import argparse

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


def positive_seconds(value: str) -> float:
    """A duration in seconds, finite and above zero (``--responses-ttl``)."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds
