"""``POST /v1/completions`` request."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, model_validator

from engines.base import StructuredOutput
from openai_frontend.errors import APIError
from openai_frontend.schemas.common import SamplingFields, StrictModel
from openai_frontend.schemas.prompt_input import prompt_field

Prompt = prompt_field(non_empty_text=False)


class StructuredOutputs(StrictModel):
    """vLLM's ``structured_outputs`` extension, as far as every engine can honour it: a
    JSON Schema or any JSON object. vLLM's other kinds (regex, choice, grammar, ...) are
    unknown fields here, so they are refused by name, never dropped. The remote engine
    sends exactly this to its upstreams."""

    # Named apart from its key: a field called "json" shadows BaseModel.json, and pydantic
    # warned about it at every start. The key stays "json", and only "json".
    model_config = ConfigDict(populate_by_name=False)  # merged with StrictModel's
    json_schema: dict[str, Any] | None = Field(None, alias="json")
    json_object: bool | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> StructuredOutputs:
        if (self.json_schema is None) == (not self.json_object):
            raise APIError(
                "structured_outputs takes exactly one of 'json' (a JSON Schema) or "
                "'json_object': true",
                param="structured_outputs",
            )
        return self

    def constraint(self) -> StructuredOutput:
        if self.json_schema is not None:
            return StructuredOutput(json_schema=self.json_schema)
        return StructuredOutput(json_object=True)


class CompletionRequest(SamplingFields):
    prompt: Prompt
    #: 0 scores the prompt without generating (with ``echo``, as OpenAI's legacy API did).
    max_tokens: int | None = Field(None, ge=0)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)
    #: vLLM's: each prompt token's logprob and this many alternatives, in vLLM's shape.
    prompt_logprobs: int | None = Field(None, ge=0, le=20)
    #: vLLM's: logprob tokens named ``"token_id:N"`` instead of by their text.
    return_tokens_as_token_ids: bool = False
    best_of: int | None = Field(None, ge=1, le=128)
    suffix: str | None = None
    structured_outputs: StructuredOutputs | None = None

    def token_limit(self) -> int | None:
        return self.max_tokens

    def prompts(self) -> list[str | list[int]]:
        """The prompt as a list of items, each a string or a list of token ids."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if isinstance(prompt[0], int):  # validation made every item one type, and not empty
            return [prompt]
        return list(prompt)
