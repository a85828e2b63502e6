"""No cyclic garbage collection while a large request body becomes objects.

Building hundreds of thousands of objects (a body of 200,000 messages: its decoded
JSON, its models, a dialect's translation, the render's message dicts) triggers full
collections, each of which walks the whole heap holding the GIL: 0.3-0.5 s stalls of the
event loop, and nine tenths of the CPU time that body cost. The objects are freed by
reference counting when the request ends; collections resume as soon as no large body
is being built, so a pause lasts about one request's preparation.

Freeing such a list holds the GIL too (0.1 s for the render's 230,000 message dicts):
:func:`free_in_steps` frees it a slice at a time, letting the loop in between.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_pausers = 0
_enabled_before = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """Collections off from the first entry to the last exit, across threads (and
    the loop's own pauses, such as a tool parser's), then as they were before."""
    global _pausers, _enabled_before
    with _lock:
        _pausers += 1
        if _pausers == 1:
            _enabled_before = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0 and _enabled_before:
                gc.enable()


def call_gc_paused(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` with collections paused (to run in a worker thread)."""
    with gc_paused():
        return work(*args)


#: Items freed in one step: well under a millisecond of deallocation.
FREE_STEP = 1000


def free_in_steps(items: list) -> None:
    """Empty ``items`` from the end, ``FREE_STEP`` at a time (items still referenced
    elsewhere merely lose this reference)."""
    while items:
        del items[-FREE_STEP:]


def freeze_start_up_heap() -> None:
    """Move what start-up built (modules, the engine's and the tokenizer's objects, all
    alive as long as the server) out of the collector's sight, as vLLM's server does: a
    full collection then walks only what requests create. SGLang measured full passes
    of 400 ms under load without this (sglang PR #30693)."""
    gc.collect()
    gc.freeze()
