"""``POST /v1/responses`` request: OpenAI's fields we serve, plus vLLM's sampling extras.

Strict like the chat request: an unknown field is a 400 naming it, so a client that
asks for something this server does not do (``conversation``, ``prompt``,
``service_tier``...) hears so instead of being silently ignored. Fields OpenAI defines
but this server cannot honour for some values (``background: true``, ``include``,
``truncation: "auto"``, ``reasoning.summary``) are accepted in their harmless values only.
Items of ``input`` are checked by :mod:`openai_frontend.responses.translate`, which
names the exact path (``input[2].content[0].type``) of a malformed one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, create_model, model_validator

from openai_frontend.errors import APIError
from openai_frontend.schemas.common import SamplingFields, StrictModel

#: Chat's sampling fields the Responses API lacks but vLLM's ``/v1/responses`` takes
#: (top level, or the SDK's ``extra_body``); each keeps chat's type and bounds.
SAMPLING_EXTRAS = (
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "top_k",
    "min_p",
    "repetition_penalty",
    "min_tokens",
    "ignore_eos",
    "stop_token_ids",
    "include_stop_str_in_output",
    "skip_special_tokens",
    "spaces_between_special_tokens",
)

_SamplingExtras = create_model(
    "_SamplingExtras",
    __base__=StrictModel,
    **{
        name: (SamplingFields.model_fields[name].annotation, SamplingFields.model_fields[name])
        for name in SAMPLING_EXTRAS
    },
)


class TextFormat(StrictModel):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextParam(StrictModel):
    format: TextFormat | None = None


class ReasoningParam(StrictModel):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    #: Summaries need a second model pass this server does not make; null is accepted.
    summary: None = None


def _refuse(param: str, message: str) -> APIError:
    return APIError(message, param=param, code="unsupported_parameter")


class ResponsesRequest(_SamplingExtras):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = True
    stream: bool | None = False
    metadata: dict[str, str] | None = None
    #: OpenAI's minimum is 16.
    max_output_tokens: int | None = Field(None, ge=16)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    text: TextParam | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningParam | None = None
    truncation: Literal["disabled", "auto"] | None = None
    background: bool | None = None
    include: list[str] | None = None
    user: str | None = None

    @model_validator(mode="after")
    def _refuse_what_we_cannot_honour(self) -> ResponsesRequest:
        if self.truncation == "auto":
            raise _refuse(
                "truncation",
                "truncation 'auto' is not supported by this server: an input longer than "
                "the context is a 400 (send 'disabled' or leave it out)",
            )
        if self.background:
            raise _refuse("background", "background responses are not supported by this server")
        if self.include:
            raise _refuse(
                "include",
                f"include value {self.include[0]!r} is not supported by this server",
            )
        return self

    def wants_stream(self) -> bool:
        return bool(self.stream)

    def wants_store(self) -> bool:
        return self.store is not False

    def sampling_extras(self) -> dict[str, Any]:
        """The vLLM-style sampling fields the client set, for the chat request."""
        return self.model_dump(include=set(SAMPLING_EXTRAS), exclude_unset=True)
