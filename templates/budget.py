"""A render deadline that jinja's generated code itself checks, so a render really stops.

Checking the clock only between output pieces misses any loop that writes nothing:
``{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}`` yields no piece for hours.
So the sandbox compiles templates with :class:`BudgetedCodeGenerator`, which makes

- every ``for`` iteration tick (its body, and its ``if`` filter for skipped items);
- every ``~`` and ``+`` of two computed values refuse a result past the output cap
  (``{% set ns.s = ns.s ~ ns.s %}`` in a loop doubles; adding a constant does not);

- every filter tick, per item for the lazy ones (``map``, ``select``, ``unique``), and
  refuse a result past the cap (a chain of ``replace`` grows it too);

and the sandbox ticks on every call (functions, methods, macros, hence recursion) and
bounds its result the same way.

Inside one filter, jinja's own Python code may loop over the whole input (``sort``
with its case-folding key, ``urlize``, ``wordwrap``: 16 s and more on 4 MB), so the
filters that do run under :func:`interruptible`, a per-thread profile hook that
checks the deadline on every Python call they make.

A tick is one clock read against a deadline kept per thread: renders run in worker
threads (see ``openai_frontend.chat_prompt``), each with its own deadline, and a
render past it raises inside its own thread, which then ends by itself. What nothing
here interrupts is one C-level operation (``str.join``, a sort without a key, a
regex); those work on data the sandbox keeps bounded (``MAX_OUTPUT_CHARS``).
"""

from __future__ import annotations

import copy
import functools
import math
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import GeneratorType
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.utils import _PassArg

from templates.errors import RenderBudgetExceeded

#: Bounds for one render. Real templates use a tiny fraction of these.
MAX_RENDER_SECONDS = 2.0
MAX_OUTPUT_CHARS = 4_000_000
#: Below this many items or characters, any filter is done in milliseconds.
QUICK_INPUT_ITEMS = 10_000


class _Deadline(threading.local):
    """The running render's deadline on this thread; none (infinity) outside a render."""

    expires_at = math.inf
    seconds = MAX_RENDER_SECONDS


_deadline = _Deadline()


@contextmanager
def render_deadline(seconds: float = MAX_RENDER_SECONDS) -> Iterator[None]:
    """Bound everything inside to ``seconds``; nested uses keep the earlier deadline."""
    outer_expiry, outer_seconds = _deadline.expires_at, _deadline.seconds
    expires_at = time.monotonic() + seconds
    if expires_at < outer_expiry:
        _deadline.expires_at, _deadline.seconds = expires_at, seconds
    try:
        yield
    finally:
        _deadline.expires_at, _deadline.seconds = outer_expiry, outer_seconds


def tick(now: Callable[[], float] = time.monotonic) -> None:
    if now() > _deadline.expires_at:
        raise RenderBudgetExceeded(f"chat template render exceeded {_deadline.seconds} s")


def ticking(items: Iterable[Any]) -> Iterator[Any]:
    """``items``, checking the deadline before each one."""
    for item in items:
        tick()
        yield item


def interruptible(
    function: Callable[..., Any], *, skip_small_input: bool = True
) -> Callable[..., Any]:
    """``function`` with the deadline checked on every Python call it makes, unless
    its input (the filter's value) is small enough to be quick anyway; pass
    ``skip_small_input=False`` when a small value can hold a big one (``pprint``).

    ``sys.setprofile`` applies to this thread only and is restored afterwards; an
    exception from the hook propagates out of ``sorted()`` and the like. The hook
    costs a Python call per call it watches, so the small inputs of every render
    (a tool list, a few content parts) skip it. ``functools.wraps`` keeps jinja's
    ``jinja_pass_arg`` marker, so jinja still passes the context first when asked.
    """
    value_at = 0 if _PassArg.from_obj(function) is None else 1

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        value = args[value_at] if len(args) > value_at else None
        if skip_small_input and _is_small(value):
            return function(*args, **kwargs)
        previous = sys.getprofile()
        sys.setprofile(_stop_when_late)
        try:
            return function(*args, **kwargs)
        finally:
            sys.setprofile(previous)

    return run


def _is_small(value: Any) -> bool:
    return isinstance(value, str | list | tuple | dict) and len(value) <= QUICK_INPUT_ITEMS


#: Python calls, and C calls too: textwrap's main loop calls only ``len`` and
#: ``list.append``, so "call" events alone would let ``wordwrap`` run on.
_WATCHED_EVENTS = frozenset({"call", "c_call"})


def _stop_when_late(frame: Any, event: str, arg: Any) -> None:
    if (
        event in _WATCHED_EVENTS
        and time.monotonic() > _deadline.expires_at
        and not _in_finalizer(frame)
    ):
        tick()


#: The code of ``weakref.finalize`` callbacks' caller. A collection may run one (or a
#: ``__del__``) in the middle of a filter; Python swallows an exception raised there
#: *and unsets the profile hook*, so the filter would run on unwatched for seconds.
_FINALIZE_CODE = weakref.finalize.__call__.__code__


def _in_finalizer(frame: Any) -> bool:
    """Whether ``frame`` runs inside a finalizer: the hook waits for the next event
    back in the filter's own code (the walk happens only once the deadline is past)."""
    while frame is not None:
        code = frame.f_code
        if code is _FINALIZE_CODE or code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def filtered(result: Any, now: Callable[[], float] = time.monotonic) -> Any:
    """What a filter returned: the deadline checked, a generator ticking per item
    (``map``, ``select``, ``unique`` are lazy), anything else bounded like ``~``.

    The generated code calls this around every filter, in one call (it runs on every
    filter of every render: the tick and the bound are inlined for speed).
    """
    if now() > _deadline.expires_at:
        tick()
    if isinstance(result, GeneratorType):
        return ticking(result)
    if isinstance(result, str | list | tuple) and len(result) > MAX_OUTPUT_CHARS:
        bounded(result)
    return result


def bounded(value: Any) -> Any:
    """The result of ``~`` or ``+``, refused past the output cap (no doubling in a loop)."""
    if isinstance(value, str | list | tuple) and len(value) > MAX_OUTPUT_CHARS:
        raise RenderBudgetExceeded(
            f"chat template built a value over {MAX_OUTPUT_CHARS} items or characters"
        )
    return value


def _python(code: str) -> nodes.InternalName:
    """An expression node that the code generator writes out verbatim.

    jinja forbids new node types; its parser makes ``InternalName`` nodes this same
    way (``Parser.free_identifier``), and the generator writes their name as is.
    """
    node = object.__new__(nodes.InternalName)
    nodes.Node.__init__(node, code)
    return node


class BudgetedCodeGenerator(CodeGenerator):
    """jinja's code generator, plus the ticks and the ``~`` / ``+`` bound described above.

    The template's AST is left as parsed; the loop node is copied with a tick put
    first in its body, and the rest of the generated code is jinja's own, so output
    stays byte-for-byte what transformers' sandbox makes.
    """

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        ticked = copy.copy(node)
        tick_call = _python("environment.budget_tick()")
        ticked.body = [nodes.ExprStmt(tick_call, lineno=node.lineno), *node.body]
        if node.test is not None:
            ticked.test = nodes.Or(tick_call, node.test, lineno=node.test.lineno)
        super().visit_For(ticked, frame)

    def visit_Filter(self, node: nodes.Filter, frame: Frame) -> None:
        self.write("environment.filtered(")
        super().visit_Filter(node, frame)
        self.write(")")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self._bounded_if_computed(node.nodes, super().visit_Concat, node, frame)

    def visit_Add(self, node: nodes.Add, frame: Frame) -> None:
        self._bounded_if_computed([node.left, node.right], super().visit_Add, node, frame)

    def _bounded_if_computed(
        self,
        operands: list[nodes.Expr],
        visit: Callable[[nodes.Expr, Frame], None],
        node: nodes.Expr,
        frame: Frame,
    ) -> None:
        """Bound the result when two operands are computed (a constant grows it linearly,
        and real templates add constants all the time, so those stay unchecked)."""
        computed = sum(not isinstance(operand, nodes.Const) for operand in operands)
        if computed < 2:
            visit(node, frame)
            return
        self.write("environment.bounded(")
        visit(node, frame)
        self.write(")")
