"""A Messages request as the chat request the pipeline runs.

``system`` becomes a system message, and so does a ``system`` turn at its place; text
blocks become message content; an
assistant's ``tool_use`` blocks become its ``tool_calls`` and a user's ``tool_result``
blocks become tool messages; tools become function tools; ``tool_choice`` maps
``auto``/``any``/``tool``/``none`` to ``auto``/``required``/a named function/``none``.
A final assistant message is a prefill: the reply continues it, as Anthropic's does.
Earlier thinking blocks are left out of the prompt, as Anthropic leaves them out of
the context.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from openai_frontend.errors import refused_translation
from openai_frontend.schemas.chat import ChatCompletionRequest, ChatMessage
from openai_frontend.schemas.messages import (
    CountTokensRequest,
    Message,
    MessagesRequest,
    OutputConfig,
    TextBlock,
    ThinkingAdaptive,
    ThinkingEnabled,
    Tool,
    ToolChoice,
    ToolChoiceAny,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
)

#: How a failed tool's result reads in the prompt (chat's tool messages have no flag).
TOOL_ERROR_PREFIX = "Error: "


def to_chat(body: CountTokensRequest) -> ChatCompletionRequest:
    """The chat request for ``body``: a full Messages request, or a count_tokens one."""
    messages = _system(body.system) + [
        chat for message in body.messages for chat in _messages(message)
    ]
    fields: dict[str, Any] = {
        "model": body.model,
        "messages": messages,
        "include_reasoning": shows_thinking(body),
        "continue_final_message": body.messages[-1].role == "assistant",
        **_tool_fields(body.tools, body.tool_choice),
        **_output_fields(body.output_config),
        **_template_fields(body),
    }
    if isinstance(body, MessagesRequest):
        fields.update(_sampling(body))
    try:
        return ChatCompletionRequest.model_validate(fields)
    except ValidationError as error:  # the schema above should have refused it first
        raise refused_translation(error) from None


def shows_thinking(body: CountTokensRequest) -> bool:
    """Whether the reply carries the model's reasoning as thinking blocks."""
    thinking = body.thinking
    if isinstance(thinking, ThinkingEnabled | ThinkingAdaptive):
        return thinking.display != "omitted"
    return False


def _template_fields(body: CountTokensRequest) -> dict[str, Any]:
    """vLLM's template controls, with ``output_config.effort`` as the template variable
    ``reasoning_effort`` under the client's own kwargs: a template that reads it gets it,
    any other ignores it (effort is a signal, see OutputConfig)."""
    fields = body.model_dump(include={"chat_template"}, exclude_none=True)
    kwargs = body.chat_template_kwargs or {}
    effort = body.output_config.effort if body.output_config is not None else None
    if effort is not None:
        kwargs = {"reasoning_effort": effort, **kwargs}
    if kwargs:
        fields["chat_template_kwargs"] = kwargs
    return fields


def _output_fields(config: OutputConfig | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if config is None:
        return fields
    if config.format is not None:
        schema = {"name": "output", "schema": config.format.schema_}
        fields["response_format"] = {"type": "json_schema", "json_schema": schema}
    return fields


def _sampling(body: MessagesRequest) -> dict[str, Any]:
    fields = body.model_dump(
        include={"max_tokens", "temperature", "top_p", "top_k", "stream", "ignore_eos"},
        exclude_none=True,
    )
    if body.stop_sequences:
        fields["stop"] = body.stop_sequences
    if body.metadata is not None and body.metadata.user_id is not None:
        fields["user"] = body.metadata.user_id
    return fields


def _system(system: str | list[TextBlock] | None) -> list[ChatMessage]:
    if system is None:
        return []
    return [ChatMessage(role="system", content=_text(system))]


def _text(content: str | list[TextBlock]) -> str | list[dict]:
    if isinstance(content, str):
        return content
    if len(content) == 1:
        return content[0].text
    return [{"type": "text", "text": block.text} for block in content]


def _messages(message: Message) -> list[ChatMessage]:
    if message.role == "assistant":
        return [_assistant(message)]
    if message.role == "system":
        return [ChatMessage(role="system", content=_text(message.content))]
    return _user(message)


def _assistant(message: Message) -> ChatMessage:
    texts = [block for block in message.content if isinstance(block, TextBlock)]
    calls = [_call(block) for block in message.content if isinstance(block, ToolUseBlock)]
    return ChatMessage(
        role="assistant",
        content=_text(texts) if texts else (None if calls else ""),
        tool_calls=calls or None,
    )


def _call(block: ToolUseBlock) -> dict[str, Any]:
    arguments = json.dumps(block.input, ensure_ascii=False)
    return {
        "id": block.id,
        "type": "function",
        "function": {"name": block.name, "arguments": arguments},
    }


def _user(message: Message) -> list[ChatMessage]:
    """Tool results become tool messages, each run of text blocks a user message, in
    their order (Anthropic puts the results first, then any text)."""
    chats: list[ChatMessage] = []
    texts: list[TextBlock] = []
    for block in message.content:
        if isinstance(block, TextBlock):
            texts.append(block)
            continue
        if texts:
            chats.append(ChatMessage(role="user", content=_text(texts)))
            texts = []
        if isinstance(block, ToolResultBlock):
            chats.append(_tool_result(block))
    if texts:
        chats.append(ChatMessage(role="user", content=_text(texts)))
    return chats


def _tool_result(block: ToolResultBlock) -> ChatMessage:
    content = block.content if block.content is not None else ""
    text = content if isinstance(content, str) else "\n".join(part.text for part in content)
    if block.is_error:
        text = TOOL_ERROR_PREFIX + text
    return ChatMessage(role="tool", tool_call_id=block.tool_use_id, content=text)


def _tool_fields(tools: list[Tool] | None, choice: ToolChoice | None) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    loaded = [tool for tool in tools or [] if not tool.defer_loading]
    if loaded:
        fields["tools"] = [_function(tool) for tool in loaded]
    if choice is None:
        return fields
    if isinstance(choice, ToolChoiceTool):
        fields["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    else:
        fields["tool_choice"] = "required" if isinstance(choice, ToolChoiceAny) else choice.type
    disable_parallel = getattr(choice, "disable_parallel_tool_use", None)
    if disable_parallel is not None and loaded:
        fields["parallel_tool_calls"] = not disable_parallel
    return fields


def _function(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description is not None:
        function["description"] = tool.description
    return {"type": "function", "function": function}
