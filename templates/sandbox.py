"""The jinja2 sandbox templates run in: transformers' globals and filters, with bounds.

transformers renders in an ``ImmutableSandboxedEnvironment`` with ``loopcontrols``,
``trim_blocks`` and ``lstrip_blocks``, and gives templates ``raise_exception``,
``strftime_now`` and its own ``tojson``; so does this one. On top: ``range``, ``*``,
``**``, ``+`` and ``~`` cannot build huge values, and the code generator, every call
and every filter check the render deadline (``templates.budget``).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from templates.budget import (
    MAX_OUTPUT_CHARS,
    QUICK_INPUT_ITEMS,
    BudgetedCodeGenerator,
    bounded,
    filtered,
    interruptible,
    tick,
)
from templates.errors import RenderBudgetExceeded
from templates.lru import ByteBoundedLRU

MAX_RANGE = 100_000
MAX_EXPONENT = 64
#: Filters whose jinja implementation loops over its input in Python (or calls a
#: Python key per item); the others are C-level or constant work per call.
INTERRUPTIBLE_FILTERS = frozenset(
    {
        "batch", "dictsort", "groupby", "join", "max", "min", "slice", "sort", "striptags",
        "sum", "title", "unique", "urlencode", "urlize", "wordwrap",
    }
)  # fmt: skip
#: The same, for filters whose small value can nest a big one.
NESTED_INPUT_FILTERS = frozenset({"pprint", "xmlattr"})


def bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise RenderBudgetExceeded(f"range() of {len(numbers)} items exceeds {MAX_RANGE}")
    return numbers


def raise_exception(message: str) -> None:
    """Templates call this to reject a conversation (for example, bad role order)."""
    raise jinja2.exceptions.TemplateError(message)


def tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    """transformers' tojson: no HTML escaping, non-ASCII kept, json.dumps options.

    Templates serialise the same tool schemas on every request, and json.dumps with an
    indent runs in pure Python; so the result is memoised on the value's compact
    encoding (json's C encoder), from which the indented text follows exactly.
    """
    try:
        key = _compact(value)
    except (TypeError, ValueError):  # not JSON-serialisable: let json.dumps say so
        return _dumps(value, ensure_ascii, indent, separators, sort_keys)
    options = (ensure_ascii, indent, tuple(separators) if separators else None, sort_keys)
    return _tojson_memo((key, options), value)


def _dumps(value: Any, ensure_ascii: bool, indent: Any, separators: Any, sort_keys: bool) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


_compact = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_interruptible_dumps = interruptible(_dumps, skip_small_input=False)

MemoKey = tuple[str, tuple]
#: tojson results, counted in bytes (key and text) like the other caches: a count of
#: entries alone let 512 results of a 3 MB tool description hold 3 GB.
TOJSON_MEMO: ByteBoundedLRU[MemoKey, str] = ByteBoundedLRU(
    max_bytes=32 * 1024 * 1024, max_entry_bytes=8 * 1024 * 1024, max_entries=512
)


class _RenderMemo(threading.local):
    """The results one render on this thread computed, memoised only if that render
    succeeds (see :func:`tojson_memo_kept_on_success`); None outside a render, where
    nothing is memoised."""

    pending: dict[MemoKey, tuple[str, int]] | None = None


_render_memo = _RenderMemo()


@contextmanager
def tojson_memo_kept_on_success() -> Iterator[None]:
    """Results computed inside are memoised only if nothing inside raised: a render past
    a bound (its 4,000,000-character output cap, its deadline) keeps nothing."""
    outer, _render_memo.pending = _render_memo.pending, {}
    try:
        yield
        for key, (text, size) in _render_memo.pending.items():
            TOJSON_MEMO.put(key, text, size)
    finally:
        _render_memo.pending = outer


def _tojson_memo(key: MemoKey, value: Any) -> str:
    pending = _render_memo.pending
    cached = TOJSON_MEMO.get(key)
    if cached is None and pending is not None and key in pending:
        cached = pending[key][0]
    if cached is not None:
        return cached
    # json's indenting encoder is pure Python; the compact text sizes the work.
    dumps = _dumps if len(key[0]) <= QUICK_INPUT_ITEMS else _interruptible_dumps
    text = dumps(value, *key[1])
    if pending is not None:
        pending[key] = (text, sys.getsizeof(key[0]) + sys.getsizeof(text))
    return text


def strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


_DICT_ATTRIBUTES = frozenset(dir(dict))


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with size checks on ``*`` and ``**`` and on every call."""

    intercepted_binops = frozenset({"*", "**"})
    code_generator_class = BudgetedCodeGenerator
    # Called by the generated code (templates.budget.BudgetedCodeGenerator).
    budget_tick = staticmethod(tick)
    bounded = staticmethod(bounded)
    filtered = staticmethod(filtered)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``message.role`` on a dict, without the AttributeError jinja raises first.

        Jinja tries ``getattr`` before ``obj[...]``, so a dict key only wins when the
        dict type has no attribute of that name; the shortcut keeps exactly that rule.
        """
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Every call ticks: macros (so recursion), methods, globals, ``loop(...)``;
        and its result is bounded like ``~`` (``s.replace('a', 'aa')`` doubles)."""
        tick()
        return bounded(super().call(context, obj, *args, **kwargs))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise RenderBudgetExceeded("exponent too large in chat template")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                repeats = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if repeats and len(seq) * count > MAX_OUTPUT_CHARS:
                    raise RenderBudgetExceeded("sequence repetition too large in chat template")
        return super().call_binop(context, operator, left, right)


def sandbox() -> Sandbox:
    """The environment, with jinja's constant folding off (``optimized=False``).

    Folding only moves work from render to compile time and never changes output, but
    it is cubic in expression depth: 190 chained filters, a 600-byte template, took
    4.8 s to compile, with no way to stop it. Output stays the same without it.
    """
    env = Sandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols],
        optimized=False,
    )
    env.filters["tojson"] = tojson
    for name in INTERRUPTIBLE_FILTERS:
        env.filters[name] = interruptible(env.filters[name])
    for name in NESTED_INPUT_FILTERS:
        env.filters[name] = interruptible(env.filters[name], skip_small_input=False)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["range"] = bounded_range
    return env
