"""The Response object: the request's settings, echoed, plus status, output and usage.

Every field follows the spec's ``Response`` schema: nulls only where it allows them
(``user`` and ``usage`` are left out rather than null, ``text`` and ``tools`` are always
objects/lists), which is where other servers' bodies fail OpenAI's own validators.
"""

from __future__ import annotations

import time
from typing import Any

from openai_frontend.responses.items import Item
from openai_frontend.schemas.responses import ResponsesRequest


def response_head(body: ResponsesRequest, response_id: str, stored: bool) -> dict[str, Any]:
    """What every snapshot of this response shares (its request's settings)."""
    head: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "model": body.model,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "metadata": body.metadata or {},
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "reasoning": {
            "effort": body.reasoning.effort if body.reasoning else None,
            "summary": body.reasoning.summary if body.reasoning else None,
        },
        "store": stored,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "text": {"format": _text_format(body)},
        "tool_choice": body.tool_choice or "auto",
        "tools": [_tool(tool) for tool in body.tools or []],
        "truncation": "disabled",
        "background": bool(body.background),
    }
    if body.user is not None:
        head["user"] = body.user
    return head


def _text_format(body: ResponsesRequest) -> dict[str, Any]:
    if body.text is None or body.text.format is None:
        return {"type": "text"}
    return body.text.format.model_dump(by_alias=True, exclude_none=True)


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A function tool as OpenAI echoes it (``strict`` and ``parameters`` always there)."""
    return {"parameters": None, "strict": None, **tool}


def snapshot(
    head: dict[str, Any],
    status: str,
    output: list[Item],
    *,
    usage: dict[str, Any] | None = None,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The response at one moment: ``queued``, ``in_progress``, ``completed``,
    ``incomplete``, ``failed`` or ``cancelled``."""
    body = {
        **head,
        "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "output": output,
    }
    if usage is not None:
        body["usage"] = usage
    return body


def final_status(finish_reason: str) -> str:
    """``incomplete`` when the token limit cut the reply, else ``completed``."""
    return "incomplete" if finish_reason == "length" else "completed"


def responses_usage(chat_usage: dict[str, Any]) -> dict[str, Any]:
    """Chat's usage in the Responses names; detail counts the pipeline lacks are 0."""
    prompt_details = chat_usage.get("prompt_tokens_details") or {}
    completion_details = chat_usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": chat_usage["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": prompt_details.get("cached_tokens", 0),
            "cache_write_tokens": prompt_details.get("cache_write_tokens", 0),
        },
        "output_tokens": chat_usage["completion_tokens"],
        "output_tokens_details": {
            "reasoning_tokens": completion_details.get("reasoning_tokens", 0),
        },
        "total_tokens": chat_usage["total_tokens"],
    }
