"""``POST /v1/embeddings`` request: OpenAI's fields and vLLM's ``truncate_prompt_tokens``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from openai_frontend.errors import APIError
from openai_frontend.schemas.common import StrictModel
from openai_frontend.schemas.prompt_input import prompt_field

#: OpenAI's limit on the inputs of one request ("any array must be 2048 dimensions or less").
MAX_INPUTS = 2048

#: The count of inputs is checked first (``_at_most_max_inputs``), naming the limit.
EmbeddingInput = prompt_field(non_empty_text=True)


class EmbeddingRequest(StrictModel):
    model: str
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    #: vLLM's opt-in: keep only the first N tokens of each input (-1: the model's
    #: context). Without it, an input longer than the context is refused with a 400.
    truncate_prompt_tokens: int | None = Field(None, ge=-1)

    @model_validator(mode="before")
    @classmethod
    def _at_most_max_inputs(cls, data: object) -> object:
        """Past the limit, the union's first member would say "Input should be a valid
        string": name the field and the limit instead."""
        items = data.get("input") if isinstance(data, dict) else None
        if isinstance(items, list) and len(items) > MAX_INPUTS:
            raise APIError(
                f"Invalid 'input': an array of at most {MAX_INPUTS} items (texts, token-id "
                f"lists, or the token ids of one input) is allowed, but it has {len(items)}. "
                "Send fewer inputs per request.",
                param="input",
            )
        return data

    @model_validator(mode="after")
    def _truncation_keeps_something(self) -> EmbeddingRequest:
        if self.truncate_prompt_tokens == 0:
            raise APIError(
                "truncate_prompt_tokens must be a positive number of tokens, or -1 for the "
                "model's context length",
                param="truncate_prompt_tokens",
            )
        return self

    def inputs(self) -> list[str | list[int]]:
        """The input as a list of items, each a string or a list of token ids."""
        value = self.input
        if isinstance(value, str) or isinstance(value[0], int):  # one type, not empty
            return [value]
        return list(value)
