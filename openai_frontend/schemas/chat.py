"""``POST /v1/chat/completions`` request."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from openai_frontend.errors import APIError
from openai_frontend.schemas.common import SamplingFields, StrictModel


class ContentPart(BaseModel):
    """One part of a list-valued ``content``; the renderer decides what it accepts."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: str
    text: str | None = None


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    name: str
    arguments: str | dict = "{}"


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    """A message; unknown fields are kept, since templates may read them."""

    model_config = ConfigDict(extra="allow", strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


#: OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512.
MetadataMap = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]],
    Field(max_length=16),
]


class ResponseFormat(StrictModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = (
        None
    )
    #: vLLM's: false leaves ``reasoning_content`` out of the reply.
    include_reasoning: bool = True
    # OpenAI's request fields that change no token (README: "OpenAI's request fields").
    metadata: MetadataMap | None = None
    #: false only: this server stores no chat completion (true is a 400, see the router).
    store: bool | None = None
    #: Passed to the engine request (GenerateRequest.prompt_cache_key) for routing.
    prompt_cache_key: str | None = None
    safety_identifier: str | None = Field(None, max_length=64)
    #: Mapped to a priority (openai_frontend.priority).
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    #: ["text"] only: text is the only output this server generates.
    modalities: list[str] | None = None
    #: A variable of the chat template, where the template reads one (as reasoning_effort).
    verbosity: Literal["low", "medium", "high"] | None = None
    #: This server's prefix cache lives in memory; "24h" (on disk) is refused.
    prompt_cache_retention: Literal["in_memory"] | None = None
    # Template controls (vLLM's names).
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    documents: list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _text_only(self) -> ChatCompletionRequest:
        if self.modalities is not None and set(self.modalities) != {"text"}:
            raise APIError(
                f"modalities {self.modalities} are not supported: this server generates "
                'text only (send ["text"] or leave it out)',
                param="modalities",
                code="unsupported_parameter",
            )
        return self

    def token_limit(self) -> int | None:
        """``max_completion_tokens`` wins over the deprecated ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens
