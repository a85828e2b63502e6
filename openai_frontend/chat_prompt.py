"""Chat request → prompt text: messages as transformers expects them, then the template.

The render runs in a worker thread, never on the event loop: a request's template is
code, and compiling and running it can take up to the render deadline
(``MAX_RENDER_SECONDS``), during which every stream and health check would stall.

Why threads and not processes: the deadline is enforced inside the render (the
compiled template checks it in every loop iteration, call and filter; see
``templates.budget``), so a render past it stops by itself and its thread is free
again; nothing has to be killed. A thread hop costs about 50 µs on the 2-core test
machine, a process-pool hop about 270 µs (pickling the conversation both ways), and
every chat request renders. Renders hold the GIL, so more threads add no throughput;
a few let a quick render interleave with a slow one instead of queueing behind it,
while leaving the event loop its share of the GIL.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from openai_frontend import jsondecode
from openai_frontend.errors import APIError
from openai_frontend.gc_pause import free_in_steps
from openai_frontend.schemas.chat import ChatCompletionRequest, ChatMessage
from templates.budget import render_deadline
from templates.renderer import (
    ChatTemplateError,
    iterates_over_content,
    render,
    select_template,
)
from templates.sources import TemplateResolver

T = TypeVar("T")
TEXT_ONLY_PARTS = frozenset({"text"})
RENDER_THREADS = 4
_RENDER_POOL = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="chat-template")


async def render_chat(request: ChatCompletionRequest, resolver: TemplateResolver) -> str:
    """The prompt text for a chat request, rendered off the event loop."""
    return await off_loop(render_chat_now, request, resolver)


async def off_loop(function: Callable[..., T], *args: object) -> T:
    """Template work in a render thread, never on the event loop: the render itself,
    and the probe renders that decide how a template treats tools (chat_tools)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_RENDER_POOL, functools.partial(function, *args))


def render_chat_now(request: ChatCompletionRequest, resolver: TemplateResolver) -> str:
    """The render itself; any template problem is the client's 400.

    One deadline covers picking, compiling and rendering the template.
    """
    try:
        with render_deadline():
            return _render(request, resolver)
    except ChatTemplateError as exc:
        raise APIError(exc.message, param=exc.param) from None


def _render(request: ChatCompletionRequest, resolver: TemplateResolver) -> str:
    template = select_template(resolver.resolve(request.chat_template), bool(request.tools))
    parts_as_list = iterates_over_content(template)
    messages = [_message(m, i, parts_as_list) for i, m in enumerate(request.messages)]
    try:
        return render(
            template,
            messages,
            tools=request.tools,
            documents=request.documents,
            add_generation_prompt=_add_generation_prompt(request),
            continue_final_message=request.continue_final_message,
            special_tokens=resolver.model.special_tokens,
            template_kwargs=request.chat_template_kwargs,
        )
    finally:
        free_in_steps(messages)


def _add_generation_prompt(request: ChatCompletionRequest) -> bool:
    """On by default, off by default when continuing the final message.

    Only an explicit ``add_generation_prompt: true`` with ``continue_final_message``
    is the contradiction the renderer refuses with a 400.
    """
    if "add_generation_prompt" in request.model_fields_set:
        return request.add_generation_prompt
    return not request.continue_final_message


def _message(message: ChatMessage, index: int, parts_as_list: bool) -> dict:
    """The message as a plain dict, the way transformers' templates read it."""
    data = message.model_dump(exclude_unset=True, exclude_none=False)
    data["content"] = _content(message, index, parts_as_list)
    if message.tool_calls:
        data["tool_calls"] = [
            _tool_call(call, index, j) for j, call in enumerate(data["tool_calls"])
        ]
    return data


def _content(message: ChatMessage, index: int, parts_as_list: bool) -> str | list | None:
    content = message.content
    if content is None or isinstance(content, str):
        return content
    for j, part in enumerate(content):
        if part.type not in TEXT_ONLY_PARTS:
            raise APIError(
                f"content part type '{part.type}' is not supported: this model takes text only",
                param=f"messages.[{index}].content.[{j}].type",
            )
        if part.text is None:
            raise APIError(
                "a text part needs 'text'", param=f"messages.[{index}].content.[{j}].text"
            )
    if parts_as_list:
        return [part.model_dump(exclude_none=True) for part in content]
    return "\n".join(part.text for part in content)


def _tool_call(call: dict, index: int, j: int) -> dict:
    """Arguments arrive as a JSON string; templates expect a dict (as transformers does)."""
    function = call["function"]
    arguments = function.get("arguments", "{}")
    if isinstance(arguments, str):
        function["arguments"] = history_arguments(arguments, index, j)
    return call


def history_arguments(arguments: str, index: int, j: int) -> Any:
    """An earlier call's ``arguments`` string, decoded (blank: ``{}``); text that is no
    JSON, or nests too deeply to decode, is a 400 naming the field."""
    try:
        return jsondecode.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError as error:
        raise APIError(
            f"tool call arguments must be a JSON object ({error.msg})",
            param=f"messages.[{index}].tool_calls.[{j}].function.arguments",
        ) from None
