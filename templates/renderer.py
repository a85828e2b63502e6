"""Chat template rendering, byte-for-byte compatible with transformers' apply_chat_template.

Templates are untrusted code: they run in the bounded sandbox of ``templates.sandbox``
under a render deadline that the compiled code checks as it runs (``templates.budget``),
with an output cap. Message content is passed as data and is never compiled. This is
synchronous code: servers run it in a worker thread (``openai_frontend.chat_prompt``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from copy import deepcopy
from typing import Any

import jinja2

from templates.budget import MAX_OUTPUT_CHARS, MAX_RENDER_SECONDS, render_deadline, tick
from templates.errors import ChatTemplateError, RenderBudgetExceeded
from templates.lru import ByteBoundedLRU
from templates.prepared import PreparedTemplate, is_deterministic, iterates_over_content, prepare
from templates.sandbox import tojson_memo_kept_on_success

__all__ = [
    "MAX_OUTPUT_CHARS",
    "MAX_RENDER_SECONDS",
    "ChatTemplateError",
    "is_deterministic",
    "iterates_over_content",
    "render",
    "select_template",
]

_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "
_compact = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode

#: Recent renders of deterministic templates. Clients resend the same conversation
#: prefix, system prompt and tools all the time (retries, load balancers, parallel
#: samples, agents); a hit skips Jinja entirely. The key is the template's serial
#: (its text is counted once, in the compiled-template cache) and the inputs' JSON;
#: each entry counts the bytes of that JSON and of the rendered text.
_RENDERS: ByteBoundedLRU[tuple[int, str], str] = ByteBoundedLRU(
    max_bytes=32 * 1024 * 1024, max_entry_bytes=1024 * 1024, max_entries=1024
)


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
    """Render a conversation to prompt text exactly as transformers would.

    Compiling and rendering together get ``MAX_RENDER_SECONDS`` (or less, inside an
    outer ``render_deadline``).
    """
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
    with render_deadline():
        prepared = prepare(template)
        memo_key = _memo_key(prepared, inputs)
        if memo_key is not None and (cached := _RENDERS.get(memo_key)) is not None:
            return cached
        with tojson_memo_kept_on_success():
            rendered = _render_fresh(prepared, template, *inputs)
    if memo_key is not None:
        _RENDERS.put(memo_key, rendered, sys.getsizeof(memo_key[1]) + sys.getsizeof(rendered))
    return rendered


def _memo_key(prepared: PreparedTemplate, inputs: tuple) -> tuple[int, str] | None:
    if not prepared.deterministic:
        return None
    try:
        return prepared.serial, _compact(inputs)
    except (TypeError, ValueError, RecursionError):
        return None


def _render_fresh(
    prepared: PreparedTemplate,
    template: str,
    messages: list[dict],
    tools: list[dict] | None,
    documents: list[dict] | None,
    add_generation_prompt: bool,
    continue_final_message: bool,
    special_tokens: Mapping[str, str] | None,
    template_kwargs: Mapping[str, Any] | None,
) -> str:
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
    rendered = _render_bounded(prepared.compiled, variables)
    if final_text is not None:
        rendered = _cut_after_final_message(rendered, final_text)
    return rendered


def _render_bounded(compiled: jinja2.Template, variables: dict) -> str:
    pieces: list[str] = []
    size = 0
    try:
        for piece in compiled.generate(**variables):
            size += len(piece)
            if size > MAX_OUTPUT_CHARS:
                raise RenderBudgetExceeded(
                    f"chat template output exceeds {MAX_OUTPUT_CHARS} characters"
                )
            tick()
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
