"""The gateway's own tool prompt, for models whose chat template ignores ``tools``.

Such a template would render the request as if it had no tools, and the model could
never call one. The gateway then describes the tools in the system message and asks
for the hermes format (``<tool_call>{"name": ..., "arguments": ...}</tool_call>``),
which the hermes parser reads back. Earlier calls and tool results in the history are
written in the same markup, so the model sees one consistent convention.
"""

from __future__ import annotations

import json
from typing import Any

from openai_frontend.chat_prompt import history_arguments
from openai_frontend.schemas.chat import ChatMessage, ToolCall

_INSTRUCTIONS = """# Tools

You can call functions to help answer the user. Their signatures, one JSON object per \
line:
<tools>
{tools}
</tools>

To call a function, answer with one block per call, each holding a JSON object with \
the function's name and its arguments:
<tool_call>
{{"name": "function_name", "arguments": {{"argument": "value"}}}}
</tool_call>
Answer in plain text when no function is needed."""


def tool_system_text(tools: list[dict[str, Any]]) -> str:
    lines = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return _INSTRUCTIONS.format(tools=lines)


def with_tool_prompt(
    messages: list[ChatMessage], tools: list[dict[str, Any]] | None
) -> list[ChatMessage]:
    """The messages with the tools described in the system message (when there are
    tools to call) and the tool history written as hermes markup."""
    rewritten = [_plain(message, index) for index, message in enumerate(messages)]
    if not tools:
        return rewritten
    text = tool_system_text(tools)
    first = rewritten[0] if rewritten else None
    if first is not None and first.role == "system" and isinstance(first.content, str):
        merged = first.model_copy(update={"content": f"{first.content}\n\n{text}"})
        return [merged, *rewritten[1:]]
    return [ChatMessage(role="system", content=text), *rewritten]


def _plain(message: ChatMessage, index: int) -> ChatMessage:
    if message.role == "assistant" and message.tool_calls:
        said = [message.content] if isinstance(message.content, str) and message.content else []
        blocks = [_call_block(call, index, j) for j, call in enumerate(message.tool_calls)]
        return ChatMessage(role="assistant", content="\n".join([*said, *blocks]))
    if message.role == "tool":
        content = message.content if isinstance(message.content, str) else _text(message)
        return ChatMessage(role="user", content=f"<tool_response>\n{content}\n</tool_response>")
    return message


def _call_block(call: ToolCall, index: int, j: int) -> str:
    arguments = call.function.arguments
    if isinstance(arguments, str):
        arguments = history_arguments(arguments, index, j)
    text = json.dumps({"name": call.function.name, "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{text}\n</tool_call>"


def _text(message: ChatMessage) -> str:
    parts = message.content or []
    return "\n".join(part.text or "" for part in parts)
