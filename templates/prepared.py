"""Templates compiled once, with what their AST says, in a cache bounded by bytes.

Parsing is the expensive part of a template (a 140 KB one took 2 s), so it happens
once per distinct text: parse, read the AST (does it read the clock, does it loop
over ``message.content``), then generate and compile the Python code. The cache
counts each entry as its template text plus its generated Python source, so a flood
of unique templates evicts old ones instead of growing; request templates are also
capped in size before they get here (``templates.sources``).
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass

import jinja2
import jinja2.nodes

from templates.budget import tick
from templates.errors import ChatTemplateError
from templates.lru import ByteBoundedLRU
from templates.sandbox import sandbox

_ENV = sandbox()
_SERIALS = itertools.count()
_PREPARED: ByteBoundedLRU[str, PreparedTemplate] = ByteBoundedLRU(
    max_bytes=64 * 1024 * 1024, max_entry_bytes=16 * 1024 * 1024, max_entries=64
)


@dataclass(frozen=True)
class PreparedTemplate:
    """One compiled template. ``serial`` names its text in other caches, cheaply."""

    serial: int
    compiled: jinja2.Template
    deterministic: bool
    iterates_over_content: bool


def prepare(source: str) -> PreparedTemplate:
    """The compiled template for ``source``; compiled on first sight, then cached."""
    prepared = _PREPARED.get(source)
    if prepared is None:
        prepared, size = _compile(source)
        _PREPARED.put(source, prepared, size)
    tick()  # compiling counts against the render's deadline
    return prepared


def iterates_over_content(source: str) -> bool:
    """Whether the template loops over ``message.content`` (it takes a list of parts)."""
    try:
        return prepare(source).iterates_over_content
    except ChatTemplateError:
        return False


def is_deterministic(source: str) -> bool:
    """A template that reads the clock (``strftime_now``) renders differently over time."""
    try:
        return prepare(source).deterministic
    except ChatTemplateError:
        return False


def _compile(source: str) -> tuple[PreparedTemplate, int]:
    try:
        ast = _ENV.parse(source)
        deterministic, over_content = _reads_no_clock(ast), _loops_over_content(ast)
        python = _ENV.compile(ast, raw=True)
        code = compile(python, "<template>", "exec")
    except jinja2.TemplateSyntaxError as exc:
        raise ChatTemplateError(
            f"chat template has a syntax error at line {exc.lineno}: {exc.message}",
            param="chat_template",
        ) from None
    except (RecursionError, SyntaxError, MemoryError):  # Python's own nesting limits
        message = "chat template is nested too deeply"
        raise ChatTemplateError(message, param="chat_template") from None
    compiled = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None))
    prepared = PreparedTemplate(next(_SERIALS), compiled, deterministic, over_content)
    return prepared, sys.getsizeof(source) + sys.getsizeof(python)


def _reads_no_clock(ast: jinja2.nodes.Template) -> bool:
    return not any(node.name == "strftime_now" for node in ast.find_all(jinja2.nodes.Name))


def _loops_over_content(ast: jinja2.nodes.Template) -> bool:
    """Like vLLM's content-format detection: a ``for`` over ``x.content`` /
    ``x['content']``, or over a name set from one."""
    content_names = {
        target.name
        for assign in ast.find_all(jinja2.nodes.Assign)
        if _is_content_access(assign.node)
        for target in [assign.target]
        if isinstance(target, jinja2.nodes.Name)
    }
    for loop in ast.find_all(jinja2.nodes.For):
        if _is_content_access(loop.iter):
            return True
        if isinstance(loop.iter, jinja2.nodes.Name) and loop.iter.name in content_names:
            return True
    return False


def _is_content_access(node: jinja2.nodes.Node) -> bool:
    if isinstance(node, jinja2.nodes.Getattr):
        return node.attr == "content"
    if isinstance(node, jinja2.nodes.Getitem):
        return isinstance(node.arg, jinja2.nodes.Const) and node.arg.value == "content"
    if isinstance(node, jinja2.nodes.Filter):
        return node.node is not None and _is_content_access(node.node)
    return False
