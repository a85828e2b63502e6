"""A Responses request as the chat request the shared pipeline runs.

``instructions`` become the system message, items become chat messages (a
``function_call`` joins the assistant turn before it as a ``tool_calls`` entry, a
``function_call_output`` is a ``tool`` message), flat function tools get chat's nested
shape, and ``text.format`` / ``reasoning.effort`` / ``max_output_tokens`` take their chat
names. Errors the pipeline raises in chat's names are renamed back (:func:`rename_param`),
so a client always hears about the field it sent.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from openai_frontend.errors import APIError, refused_translation
from openai_frontend.jsonbody import validated_long_lists
from openai_frontend.responses.items import Item
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.schemas.responses import ResponsesRequest, TextFormat

_FUNCTION_TOOL_FIELDS = frozenset({"type", "name", "description", "parameters", "strict"})


def to_chat_request(body: ResponsesRequest, items: list[Item]) -> ChatCompletionRequest:
    """The chat request for ``body``, whose whole conversation is ``items``."""
    fields: dict[str, Any] = {
        "model": body.model,
        "messages": chat_messages(body.instructions, items),
        "max_completion_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "tools": chat_tools(body.tools),
        "tool_choice": chat_tool_choice(body.tool_choice),
        "response_format": response_format(body.text.format if body.text else None),
        "reasoning_effort": body.reasoning.effort if body.reasoning else None,
        "metadata": body.metadata,
        "user": body.user,
        **body.sampling_extras(),
    }
    if body.tools:  # Responses allows it without tools; chat does not
        fields["parallel_tool_calls"] = body.parallel_tool_calls
    try:
        set_fields = {key: value for key, value in fields.items() if value is not None}
        return ChatCompletionRequest.model_validate(
            validated_long_lists(ChatCompletionRequest, set_fields)
        )
    except ValidationError as error:  # a part we passed on unchecked (a tool's fields)
        raise refused_translation(error, rename_param) from None


def chat_messages(instructions: str | None, items: list[Item]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if instructions is not None:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        kind = item["type"]
        if kind == "message":
            messages.append(_chat_message(item))
        elif kind == "function_call":
            _assistant_turn(messages).setdefault("tool_calls", []).append(
                {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]},
                }
            )
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]}
            )
        # Reasoning items are not re-rendered: chat templates drop earlier turns'
        # reasoning too, so chat and responses see the same prompt.
    return messages


def _chat_message(item: Item) -> dict[str, Any]:
    parts = [
        {"type": "text", "text": part["text"] if "text" in part else part["refusal"]}
        for part in item["content"]
    ]
    if len(parts) == 1:  # a plain string renders the same under every template
        return {"role": item["role"], "content": parts[0]["text"]}
    return {"role": item["role"], "content": parts}


def _assistant_turn(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message a function call belongs to: the last one, or a new one."""
    if messages and messages[-1]["role"] == "assistant":
        return messages[-1]
    messages.append({"role": "assistant", "content": None})
    return messages[-1]


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Flat function tools in chat's ``{"type", "function": {...}}`` shape; a
    ``namespace`` (Codex groups a feature's tools in one) gives its function tools, whose
    calls come back under their own names. Hosted tools (``web_search``...) run on
    OpenAI's side, which this server has not: they are refused, naming the tool."""
    if tools is None:
        return None
    converted = []
    for index, tool in enumerate(tools):
        path = f"tools[{index}]"
        if tool.get("type") == "namespace" and isinstance(tool.get("tools"), list):
            members = enumerate(tool["tools"])
            converted += [_chat_tool(member, f"{path}.tools[{i}]") for i, member in members]
        else:
            converted.append(_chat_tool(tool, path))
    return converted


def _chat_tool(tool: Any, path: str) -> dict[str, Any]:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        raise APIError(
            f"Tools of type {kind!r} are not supported by this server "
            "(only 'function' tools and namespaces of them are; hosted tools are not run here).",
            param=f"{path}.type",
            code="unsupported_parameter",
        )
    for key in tool:
        if key not in _FUNCTION_TOOL_FIELDS:
            raise APIError(f"Unrecognized field in a function tool: {key}", param=f"{path}.{key}")
    function = {key: value for key, value in tool.items() if key != "type"}
    if function.get("parameters") is None:
        function.pop("parameters", None)
    if function.get("strict") is None:
        function.pop("strict", None)
    return {"type": "function", "function": function}


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and set(choice) == {"type", "name"}:
        return {"type": "function", "function": {"name": choice["name"]}}
    raise APIError(
        "tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'name': ...} "
        "on this server.",
        param="tool_choice",
    )


def response_format(text_format: TextFormat | None) -> dict[str, Any] | None:
    if text_format is None or text_format.type == "text":
        return None
    if text_format.type == "json_object":
        return {"type": "json_object"}
    if text_format.schema_ is None or text_format.name is None:
        missing = "schema" if text_format.schema_ is None else "name"
        raise APIError(
            f"Missing required parameter: 'text.format.{missing}'.",
            param=f"text.format.{missing}",
        )
    spec = {"name": text_format.name, "schema": text_format.schema_}
    if text_format.strict is not None:
        spec["strict"] = text_format.strict
    return {"type": "json_schema", "json_schema": spec}


#: Chat's parameter names (as the pipeline's errors give them) -> the Responses names.
_RENAMES = (
    (re.compile(r"^reasoning_effort$"), "reasoning.effort"),
    (re.compile(r"^max_(completion_)?tokens$"), "max_output_tokens"),
    (re.compile(r"^(messages|prompt)\b.*"), "input"),
    (re.compile(r"^response_format(\.json_schema)?"), "text.format"),
    (re.compile(r"^(tools\[\d+\]|tool_choice)\.function"), r"\1"),
)


def rename_param(param: str | None) -> str | None:
    """``reasoning_effort`` -> ``reasoning.effort``, ``tools[0].function.name`` ->
    ``tools[0].name``, ``messages.[3].content`` -> ``input`` (a message index is not an
    item index), and so on; other names are the same in both APIs."""
    if param is None:
        return None
    for pattern, replacement in _RENAMES:
        renamed, count = pattern.subn(replacement, param)
        if count:
            return renamed
    return param


def renamed(error: APIError) -> APIError:
    """The pipeline's error, naming the Responses parameter."""
    error.param = rename_param(error.param)
    return error
