"""Fields shared by chat and completions requests: OpenAI's and vLLM's extensions."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from openai_frontend.errors import APIError
from openai_frontend.router_compat import drop_neutral_router_fields

INT64 = Field(ge=-(2**63), le=2**63 - 1)
StopField = str | Annotated[list[str], Field(max_length=64)] | None


def _token_biases(value: Any) -> dict[int, float]:
    """``logit_bias`` as token id -> bias, checked in Python on purpose.

    pydantic checks a dict in one Rust call that holds the GIL throughout: 400,000
    entries held it, and so the event loop waiting for the validating thread, for
    0.25 s. Python code lets the GIL go every few milliseconds."""
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "invalid_logit_bias", "logit_bias must be an object mapping token ids to biases"
        )
    biases: dict[int, float] = {}
    for key, bias in value.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit()):
            raise PydanticCustomError(
                "invalid_logit_bias",
                f"logit_bias keys must be token ids (integers as strings), got {key!r}",
            )
        if isinstance(bias, bool) or not isinstance(bias, int | float) or not -100 <= bias <= 100:
            raise PydanticCustomError(
                "invalid_logit_bias",
                f"logit_bias[{key!r}] must be a number from -100 to 100, got {bias!r}",
            )
        biases[int(key)] = float(bias)
    return biases


LogitBias = Annotated[
    dict[int, float],
    PlainValidator(_token_biases),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
        }
    ),
]


class StrictModel(BaseModel):
    """Unknown fields are rejected, as OpenAI does ("Unrecognized request argument").

    Types are strict, as OpenAI's are: ``"5"`` is not an integer and ``"yes"`` is not a
    boolean (pydantic's lax mode would quietly accept both).
    """

    model_config = ConfigDict(
        extra="forbid", strict=True, allow_inf_nan=False, populate_by_name=True
    )


class ObfuscationOption(StrictModel):
    """``stream_options`` as the Responses API has it (chat's adds ``include_usage``).

    OpenAI pads stream chunks with a random ``obfuscation`` string against
    side channels that read token lengths from chunk sizes; this server never adds
    it (as with false), so asking for it is refused rather than silently dropped.
    """

    include_obfuscation: bool | None = None

    @model_validator(mode="after")
    def _no_obfuscation(self) -> ObfuscationOption:
        if self.include_obfuscation:
            raise APIError(
                "stream_options.include_obfuscation is not supported by this server; "
                "chunks carry no obfuscation field (send false or leave it out)",
                param="stream_options.include_obfuscation",
                code="unsupported_parameter",
            )
        return self


class StreamOptions(ObfuscationOption):
    include_usage: bool = False


class SamplingFields(StrictModel):
    """Sampling knobs common to both endpoints. ``None`` means "use the default"."""

    model: str
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=128)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stop: StopField = None
    seed: Annotated[int, INT64] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: LogitBias | None = None
    #: Accepted and unused: OpenAI's end-user id for abuse monitoring (deprecated there).
    user: str | None = None
    # vLLM-style extensions (top level, or the SDK's extra_body).
    #: Lower is sooner: the admission queue and the engine (--scheduling-policy priority).
    priority: Annotated[int, INT64] | None = None
    top_k: int | None = Field(None, ge=-1)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0, le=2)
    min_tokens: int | None = Field(None, ge=0)
    ignore_eos: bool = False
    stop_token_ids: list[Annotated[int, Field(ge=0)]] | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True

    @model_validator(mode="before")
    @classmethod
    def _drop_neutral_router_fields(cls, data: Any) -> Any:
        """A router in front adds fields of its own (openai_frontend/router_compat.py)."""
        return drop_neutral_router_fields(data)

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> SamplingFields:
        if self.stream_options is not None and not self.stream:
            raise APIError(
                "stream_options is only allowed when stream is true", param="stream_options"
            )
        return self

    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage
