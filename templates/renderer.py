"""Chat template rendering, byte-for-byte compatible with transformers' apply_chat_template.

Templates are untrusted code: they run in jinja2's immutable sandbox, with bounded
``range``, bounded string/list multiplication, a render deadline and an output cap.
Message content is passed as data and is never compiled.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from copy import deepcopy
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Bounds for one render. Real templates use a tiny fraction of these.
MAX_RANGE = 100_000
MAX_OUTPUT_CHARS = 4_000_000
MAX_RENDER_SECONDS = 2.0
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "


class ChatTemplateError(ValueError):
    """A template could not be rendered for this request; the client sees a 400."""

    def __init__(self, message: str, *, param: str | None = "messages") -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class _RenderBudget(ChatTemplateError):
    """The render ran past its time or size bound."""


class _Deadline:
    """Per-render deadline shared by the bounded helpers of one environment call."""

    expires_at = 0.0

    @classmethod
    def check(cls) -> None:
        if time.monotonic() > cls.expires_at:
            raise _RenderBudget(f"chat template render exceeded {MAX_RENDER_SECONDS} s")


def _bounded_range(*args: int) -> Iterator[int]:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise _RenderBudget(f"range() of {len(numbers)} items exceeds {MAX_RANGE}")
    for number in numbers:
        _Deadline.check()
        yield number


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
    return _tojson_memo(key, options, value)


def _dumps(value: Any, ensure_ascii: bool, indent: Any, separators: Any, sort_keys: bool) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


_compact = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_TOJSON_CACHE: dict[tuple[str, tuple], str] = {}
_TOJSON_CACHE_MAX = 512


def _tojson_memo(key: str, options: tuple, value: Any) -> str:
    cached = _TOJSON_CACHE.get((key, options))
    if cached is None:
        cached = _dumps(value, *options)
        if len(_TOJSON_CACHE) >= _TOJSON_CACHE_MAX:
            _TOJSON_CACHE.clear()
        _TOJSON_CACHE[(key, options)] = cached
    return cached


def strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with size checks on ``*`` and ``**``."""

    intercepted_binops = frozenset({"*", "**"})

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

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise _RenderBudget("exponent too large in chat template")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                repeats = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if repeats and len(seq) * count > MAX_OUTPUT_CHARS:
                    raise _RenderBudget("sequence repetition too large in chat template")
        return super().call_binop(context, operator, left, right)


def _environment() -> _Sandbox:
    env = _Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["range"] = _bounded_range
    return env


_ENV = _environment()


@lru_cache(maxsize=64)
def compile_template(source: str) -> jinja2.Template:
    """Compile once per distinct template text."""
    try:
        return _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ChatTemplateError(
            f"chat template has a syntax error at line {exc.lineno}: {exc.message}",
            param="chat_template",
        ) from None


@lru_cache(maxsize=64)
def iterates_over_content(source: str) -> bool:
    """Whether the template loops over ``message.content`` (it takes a list of parts).

    Read from the template's AST, like vLLM's content-format detection: a ``for`` loop
    whose iterable is ``x.content`` / ``x['content']``, or a name set from one.
    """
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError:
        return False
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


def select_template(template: str | Sequence[Mapping[str, str]], has_tools: bool) -> str:
    """Pick from a list of named templates the way transformers does."""
    if isinstance(template, str):
        return template
    named = {entry["name"]: entry["template"] for entry in template}
    if has_tools and "tool_use" in named:
        return named["tool_use"]
    if "default" in named:
        return named["default"]
    raise ChatTemplateError(
        f"the model has named chat templates ({', '.join(sorted(named))}) but none named 'default'",
        param="chat_template",
    )


def render(
    template: str,
    messages: list[dict],
    *,
    tools: list[dict] | None = None,
    documents: list[dict] | None = None,
    add_generation_prompt: bool = False,
    continue_final_message: bool = False,
    special_tokens: Mapping[str, str] | None = None,
    template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Render a conversation to prompt text exactly as transformers would."""
    if continue_final_message and add_generation_prompt:
        raise ChatTemplateError(
            "continue_final_message and add_generation_prompt cannot both be true",
            param="continue_final_message",
        )
    inputs = (
        messages,
        tools,
        documents,
        add_generation_prompt,
        continue_final_message,
        special_tokens,
        template_kwargs,
    )
    memo_key = _memo_key(template, inputs)
    if memo_key is not None and (cached := _RENDERS.get(memo_key)) is not None:
        return cached
    rendered = _render_fresh(template, *inputs)
    if memo_key is not None:
        _RENDERS.put(memo_key, rendered)
    return rendered


def _render_fresh(
    template: str,
    messages: list[dict],
    tools: list[dict] | None,
    documents: list[dict] | None,
    add_generation_prompt: bool,
    continue_final_message: bool,
    special_tokens: Mapping[str, str] | None,
    template_kwargs: Mapping[str, Any] | None,
) -> str:
    compiled = compile_template(template)
    final_text = None
    if continue_final_message:
        messages, final_text = _tag_final_message(messages, template)
    variables = {
        **(special_tokens or {}),
        **(template_kwargs or {}),
        "messages": messages,
        "tools": tools,
        "documents": documents,
        "add_generation_prompt": add_generation_prompt,
    }
    rendered = _render_bounded(compiled, variables)
    if final_text is not None:
        rendered = _cut_after_final_message(rendered, final_text)
    return rendered


class _RenderMemo:
    """Recent renders of deterministic templates, bounded in entries and characters.

    Clients resend the same conversation prefix, system prompt and tools all the time
    (retries, load balancers, parallel samples, agents); a hit skips Jinja entirely.
    """

    MAX_ENTRIES = 1024
    MAX_CHARS = 16_000_000
    MAX_ENTRY_CHARS = 256_000

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._chars = 0

    def get(self, key: tuple[str, str]) -> str | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def clear(self) -> None:
        self._entries.clear()
        self._chars = 0

    def put(self, key: tuple[str, str], value: str) -> None:
        if len(value) > self.MAX_ENTRY_CHARS or key in self._entries:
            return
        self._entries[key] = value
        self._chars += len(value) + len(key[1])
        while len(self._entries) > self.MAX_ENTRIES or self._chars > self.MAX_CHARS:
            old_key, old_value = self._entries.popitem(last=False)
            self._chars -= len(old_key[1]) + len(old_value)


_RENDERS = _RenderMemo()


@lru_cache(maxsize=64)
def is_deterministic(source: str) -> bool:
    """A template that reads the clock (``strftime_now``) renders differently over time."""
    try:
        ast = _ENV.parse(source)
    except jinja2.TemplateSyntaxError:
        return False
    return not any(node.name == "strftime_now" for node in ast.find_all(jinja2.nodes.Name))


def _memo_key(template: str, inputs: tuple) -> tuple[str, str] | None:
    if not is_deterministic(template):
        return None
    try:
        return template, _compact(inputs)
    except (TypeError, ValueError, RecursionError):
        return None


def _render_bounded(compiled: jinja2.Template, variables: dict) -> str:
    _Deadline.expires_at = time.monotonic() + MAX_RENDER_SECONDS
    pieces: list[str] = []
    size = 0
    try:
        for piece in compiled.generate(**variables):
            size += len(piece)
            if size > MAX_OUTPUT_CHARS:
                raise _RenderBudget(f"chat template output exceeds {MAX_OUTPUT_CHARS} characters")
            _Deadline.check()
            pieces.append(piece)
    except ChatTemplateError:
        raise
    except jinja2.exceptions.SecurityError as exc:
        raise ChatTemplateError(f"chat template was refused by the sandbox: {exc}") from None
    except jinja2.exceptions.TemplateError as exc:
        if type(exc) is jinja2.exceptions.TemplateError:  # raise_exception() from the template
            raise ChatTemplateError(str(exc)) from None
        raise ChatTemplateError(f"chat template failed{_line_of(exc)}: {exc}") from None
    except Exception as exc:  # any runtime error inside the template is the request's fault
        raise ChatTemplateError(
            f"chat template failed{_line_of(exc)}: {type(exc).__name__}: {exc}"
        ) from None
    return "".join(pieces)


def _line_of(exc: BaseException) -> str:
    """' at line N': jinja rewrites tracebacks so template frames carry template lines."""
    lineno = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return f" at line {lineno}" if lineno else ""


def _tag_final_message(messages: list[dict], template: str) -> tuple[list[dict], str]:
    """Mark the end of the last message so the render can be cut there (transformers)."""
    messages = deepcopy(messages)
    final = messages[-1].get("content") if messages else None
    if final is None:
        raise ChatTemplateError(
            "continue_final_message is set but the final message has no content",
            param="continue_final_message",
        )
    if "content" not in template:
        raise ChatTemplateError(
            "continue_final_message is set but the chat template does not use message content",
            param="continue_final_message",
        )
    if isinstance(final, list | tuple):
        for block in reversed(final):
            if "text" in block:
                final_text = block["text"]
                block["text"] = block["text"] + _CONTINUE_TAG
                return messages, final_text
        raise ChatTemplateError(
            "continue_final_message is set but the final message has no text to continue",
            param="continue_final_message",
        )
    messages[-1]["content"] = final + _CONTINUE_TAG
    return messages, final


def _cut_after_final_message(rendered: str, final_text: str) -> str:
    tag = _CONTINUE_TAG.strip()
    if final_text.strip() not in rendered or tag not in rendered:
        raise ChatTemplateError(
            "continue_final_message is set but the chat template dropped part of the final "
            "message, so it cannot be continued",
            param="continue_final_message",
        )
    at = rendered.rindex(tag)
    if rendered[at : at + len(_CONTINUE_TAG)] == _CONTINUE_TAG:
        return rendered[:at]
    return rendered[:at].rstrip()
