"""``POST /v1/responses`` request: OpenAI's fields we serve, plus vLLM's sampling extras.

Strict like the chat request: an unknown field is a 400 naming it, so a client that
asks for something this server does not do (``conversation``, ``prompt``...) hears so
instead of being silently ignored. Fields OpenAI defines but this server cannot honour
for some values (``include``, ``truncation: "auto"``, ``reasoning.summary``) are
accepted in their harmless values only; ``background: true`` needs ``store``, as
OpenAI's does. The fields chat takes for routing and policy (``prompt_cache_key``,
``safety_identifier``, ``service_tier``) keep chat's meaning.
Items of ``input`` are checked by :mod:`openai_frontend.responses.translate`, which
names the exact path (``input[2].content[0].type``) of a malformed one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, create_model, model_validator

from openai_frontend.errors import APIError
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.schemas.common import ObfuscationOption, StrictModel

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
#: Chat's fields that the Responses API has under the same name and meaning.
CHAT_FIELDS = ("prompt_cache_key", "safety_identifier", "service_tier")
#: ``include`` values served: reasoning items carry no ``encrypted_content`` (there is no
#: hidden reasoning to carry: it is in the item's text), and none is needed to continue a
#: conversation, since earlier turns' reasoning is not re-rendered (as in chat).
SERVED_INCLUDES = frozenset({"reasoning.encrypted_content"})

_SamplingExtras = create_model(
    "_SamplingExtras",
    __base__=StrictModel,
    **{
        name: (
            ChatCompletionRequest.model_fields[name].annotation,
            ChatCompletionRequest.model_fields[name],
        )
        for name in (*SAMPLING_EXTRAS, *CHAT_FIELDS)
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
    #: Summaries need a second model pass this server does not make: null, or "auto" (the
    #: server's choice, which is none: reasoning items come with ``summary: []``).
    summary: Literal["auto"] | None = None


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
    #: Only with ``include: ["message.output_text.logprobs"]`` does OpenAI return
    #: logprobs, which this server refuses; on its own it changes nothing there or here.
    top_logprobs: int | None = Field(None, ge=0, le=20)
    stream_options: ObfuscationOption | None = None
    #: Codex's own request tags (session and turn ids); they change no token.
    client_metadata: dict[str, str] | None = None

    @model_validator(mode="after")
    def _refuse_what_we_cannot_honour(self) -> ResponsesRequest:
        if self.truncation == "auto":
            raise _refuse(
                "truncation",
                "truncation 'auto' is not supported by this server: an input longer than "
                "the context is a 400 (send 'disabled' or leave it out)",
            )
        if self.background and self.store is False:
            raise APIError(
                "background responses must be stored: background: true needs store: true "
                "(GET, cancel and a resumed stream read the stored response).",
                param="background",
            )
        for value in self.include or ():
            if value not in SERVED_INCLUDES:
                raise _refuse("include", f"include value {value!r} is not supported by this server")
        return self

    def wants_stream(self) -> bool:
        return bool(self.stream)

    def wants_store(self) -> bool:
        return self.store is not False

    def sampling_extras(self) -> dict[str, Any]:
        """The vLLM-style sampling fields and chat's fields the client set, for chat."""
        return self.model_dump(include={*SAMPLING_EXTRAS, *CHAT_FIELDS}, exclude_unset=True)
