"""``POST /v1/messages`` and ``/v1/messages/count_tokens`` requests (Anthropic's shapes).

Strict, as Anthropic is: unknown fields and wrongly typed values are 400s. Content
blocks are told apart by ``type``; a block of a type this server cannot take (images,
documents, server tools' results) is a 400 naming its path, and so is a block in a turn
it cannot belong to (a ``tool_use`` from the user, a ``tool_result`` from the assistant).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from openai_frontend.errors import APIError
from openai_frontend.schemas.common import StrictModel

#: Anthropic's rule for tool names.
TOOL_NAME = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
#: Anthropic's smallest thinking budget.
MIN_THINKING_BUDGET = 1024


class CachedBlock(StrictModel):
    """Blocks may carry ``cache_control``; prefix caching here is automatic, so a
    breakpoint changes nothing and is accepted as Anthropic's API accepts it."""

    cache_control: dict[str, Any] | None = None


class TextBlock(CachedBlock):
    type: Literal["text"]
    text: str
    citations: list[dict[str, Any]] | None = None


class ThinkingBlock(StrictModel):
    """An earlier turn's thinking, sent back; Anthropic leaves it out of the context."""

    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(StrictModel):
    type: Literal["redacted_thinking"]
    data: str


class DirectCaller(StrictModel):
    """The model itself called the tool (the only caller a client tool has here)."""

    type: Literal["direct"]


class ToolUseBlock(CachedBlock):
    """An earlier call, sent back. The SDK's own block objects carry ``caller`` and
    ``toolset_name`` (None for a direct call of a client tool), so those pass."""

    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]
    caller: DirectCaller | None = None
    toolset_name: None = None


class ToolResultBlock(CachedBlock):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock] | None = None
    is_error: bool | None = None


ContentBlock = Annotated[
    TextBlock | ThinkingBlock | RedactedThinkingBlock | ToolUseBlock | ToolResultBlock,
    Field(discriminator="type"),
]

#: Anthropic's block types this gateway takes no input of (no vision, no document
#: parsing, no server tools): refused by name rather than by a tag error.
UNSUPPORTED_BLOCKS = frozenset(
    {
        "image",
        "document",
        "search_result",
        "container_upload",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "mcp_tool_use",
        "mcp_tool_result",
    }
)

#: The roles each block type may come from; a block from another is Anthropic's 400.
BLOCK_ROLES: dict[type, tuple[str, ...]] = {
    ToolUseBlock: ("assistant",),
    ThinkingBlock: ("assistant",),
    RedactedThinkingBlock: ("assistant",),
    ToolResultBlock: ("user",),
}


def _as_blocks(content: object) -> object:
    """A string is one text block (an empty one, none): parsed as blocks, a bad list is
    reported by its path (a ``str | list`` union would report the failed ``str`` member
    first)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content


class Message(StrictModel):
    """A turn. ``system`` turns (Claude Code's mid-conversation system updates) take text
    blocks only and stay system messages at their place in the prompt."""

    role: Literal["user", "assistant", "system"]
    content: list[ContentBlock]

    _blocks = field_validator("content", mode="before")(_as_blocks)


def _unsupported_blocks(messages: object) -> None:
    """A 400 naming the first image, document or server-tool block, before the blocks
    are parsed (parsed, their tag would fail with a list of the tags this server takes)."""
    if not isinstance(messages, list):
        return
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for number, block in enumerate(content):
            kind = block.get("type") if isinstance(block, dict) else None
            # Only a string can name a block: any other ``type`` (a list, an object) is
            # left to the parse, whose 400 names it; ``in`` on a set would raise on it.
            if isinstance(kind, str) and kind in UNSUPPORTED_BLOCKS:
                raise APIError(
                    f"messages.{index}.content.{number}: {kind} blocks are not supported "
                    "by this gateway (it takes text, tool_use, tool_result and thinking "
                    "blocks)",
                    param=f"messages.{index}.content.{number}.type",
                )


def _misplaced_block(index: int, message: Message) -> None:
    """Anthropic's 400 for a block its turn cannot hold: the user makes no tool calls
    and does no thinking, the assistant returns no tool results, a system turn is text."""
    for number, block in enumerate(message.content):
        roles = BLOCK_ROLES.get(type(block), ("user", "assistant", "system"))
        if message.role not in roles:
            raise APIError(
                f"messages.{index}.content.{number}: {block.type} blocks can only be in "
                f"{roles[0]} messages, not in {message.role} messages",
                param=f"messages.{index}.content.{number}",
            )


class Tool(StrictModel):
    """A client tool. Anthropic's server tools (web search, code execution, ...) have
    their own ``type``; this server runs none of them, so they are refused by name."""

    type: str | None = None
    name: Annotated[str, TOOL_NAME]
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: dict[str, Any] | None = None
    #: Anthropic's tool search: a deferred tool stays out of the prompt (the model does
    #: not see it) until a later request sends it without the flag.
    defer_loading: bool | None = None

    @field_validator("type")
    @classmethod
    def _custom_only(cls, value: str | None) -> str | None:
        if value not in (None, "custom"):
            raise ValueError(
                f"tool type '{value}' is not supported: this server runs client tools "
                "only (type 'custom': name, description, input_schema)"
            )
        return value


class ToolChoiceAuto(StrictModel):
    type: Literal["auto"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(StrictModel):
    type: Literal["any"]
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(StrictModel):
    type: Literal["tool"]
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(StrictModel):
    type: Literal["none"]


ToolChoice = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone,
    Field(discriminator="type"),
]


#: ``summarized`` gets the whole reasoning (there is no summariser here, and the whole
#: is what a summary would be drawn from); ``omitted`` leaves it out of the reply.
#: ``updates`` (the beta API's; Claude Code sends it with ``--output-format stream-json``)
#: asks for the thinking as progress updates: here, as ``summarized``, the whole of it.
ThinkingDisplay = Literal["summarized", "omitted", "updates"]


class ThinkingEnabled(StrictModel):
    """Thinking on. ``budget_tokens`` is checked as Anthropic checks it (at least 1024,
    below ``max_tokens``); as Anthropic documents it, it is a target, not a limit: the
    reasoning is bounded by ``max_tokens``."""

    type: Literal["enabled"]
    budget_tokens: int = Field(ge=MIN_THINKING_BUDGET)
    display: ThinkingDisplay | None = None


class ThinkingAdaptive(StrictModel):
    """The model decides whether to think: one that never reasons simply does not."""

    type: Literal["adaptive"]
    display: ThinkingDisplay | None = None


class ThinkingDisabled(StrictModel):
    type: Literal["disabled"]


Thinking = Annotated[
    ThinkingEnabled | ThinkingAdaptive | ThinkingDisabled, Field(discriminator="type")
]


class JSONOutputFormat(StrictModel):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(StrictModel):
    """``effort`` reaches templates that read ``reasoning_effort``; Anthropic defines it
    as a behavioural signal, not a budget, so a model whose template takes no such
    signal answers as it always does. ``format`` constrains the reply to a JSON schema."""

    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: JSONOutputFormat | None = None


class ThinkingTurns(StrictModel):
    type: Literal["thinking_turns"]
    value: int = Field(ge=1)


class ClearThinking(StrictModel):
    """``clear_thinking_20251015``: earlier turns' thinking leaves the context. Here it
    never enters it (translate leaves every earlier thinking block out of the prompt, as
    reasoning templates do), so the edit is satisfied whatever it keeps."""

    type: Literal["clear_thinking_20251015"]
    keep: Literal["all"] | ThinkingTurns | None = None


class ContextManagement(StrictModel):
    """Anthropic's context editing. Only thinking clearing is taken: clearing old tool
    results (``clear_tool_uses_20250919``) would change the prompt in ways this gateway
    does not, so it is a 400 naming the edit."""

    edits: list[ClearThinking] | None = None

    @field_validator("edits", mode="before")
    @classmethod
    def _known_edits(cls, edits: object) -> object:
        for number, edit in enumerate(edits if isinstance(edits, list) else []):
            kind = edit.get("type") if isinstance(edit, dict) else None
            if kind != "clear_thinking_20251015":
                raise APIError(
                    f"context_management.edits.{number}.type: {kind!r} is not supported by "
                    "this gateway (it takes clear_thinking_20251015 only)",
                    param=f"context_management.edits.{number}.type",
                )
        return edits


class Metadata(StrictModel):
    user_id: str | None = Field(None, max_length=256)


class CountTokensRequest(StrictModel):
    """What a prompt is made of: ``/v1/messages/count_tokens`` takes just this."""

    model: str
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    context_management: ContextManagement | None = None
    # vLLM's template controls, as on chat (not Anthropic's).
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_unsupported_blocks(cls, data: Any) -> Any:
        if isinstance(data, dict):
            _unsupported_blocks(data.get("messages"))
        return data

    @model_validator(mode="after")
    def _contents_not_empty(self) -> CountTokensRequest:
        """Anthropic's rule: only a final assistant message (a prefill) may be empty."""
        last = len(self.messages) - 1
        for index, message in enumerate(self.messages):
            _misplaced_block(index, message)
            for number, block in enumerate(message.content):
                if isinstance(block, TextBlock) and not block.text:
                    raise APIError(
                        f"messages.{index}.content.{number}: text content blocks must be non-empty",
                        param=f"messages.{index}.content.{number}.text",
                    )
            if not message.content and not (index == last and message.role == "assistant"):
                raise APIError(
                    f"messages.{index}: all messages must have non-empty content except for "
                    "the optional final assistant message",
                    param=f"messages.{index}.content",
                )
        return self


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stop_sequences: Annotated[list[str], Field(max_length=64)] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    metadata: Metadata | None = None
    stream: bool = False
    #: vLLM's extension, as on chat: generate ``max_tokens`` whatever the model would
    #: end with (benchmarks use it to fix the output length).
    ignore_eos: bool = False

    @model_validator(mode="after")
    def _budget_below_max_tokens(self) -> MessagesRequest:
        thinking = self.thinking
        if isinstance(thinking, ThinkingEnabled) and thinking.budget_tokens >= self.max_tokens:
            raise APIError(
                "`max_tokens` must be greater than `thinking.budget_tokens`.",
                param="thinking.budget_tokens",
            )
        return self
