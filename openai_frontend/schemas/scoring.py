"""``/v1/rerank`` (Cohere/Jina shape, as vLLM and llama-server accept it) and ``/v1/score``
(vLLM's shape) requests.

A document is a string or Cohere's/Jina's ``{"text": ...}`` object. The truncation fields
are vLLM's: ``truncate_prompt_tokens`` for every text (-1: the model's context), and
``max_tokens_per_query`` / ``max_tokens_per_doc`` (Cohere v2 sends the latter) for one side.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from openai_frontend.errors import APIError
from openai_frontend.schemas.common import StrictModel

#: The most documents (or text pairs) one request may carry, as for embeddings' inputs.
MAX_DOCUMENTS = 2048

_Text = Annotated[str, Field(min_length=1)]


class TextDocument(StrictModel):
    text: _Text


Document = _Text | TextDocument
_Texts = Annotated[list[_Text], Field(min_length=1, max_length=MAX_DOCUMENTS)]


class ScoringFields(StrictModel):
    model: str
    user: str | None = None
    truncate_prompt_tokens: int | None = Field(None, ge=-1)
    max_tokens_per_query: int | None = Field(None, ge=1)
    max_tokens_per_doc: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _truncation_keeps_something(self) -> ScoringFields:
        if self.truncate_prompt_tokens == 0:
            raise APIError(
                "truncate_prompt_tokens must be a positive number of tokens, or -1 for the "
                "model's context length",
                param="truncate_prompt_tokens",
            )
        return self


class RerankRequest(ScoringFields):
    query: _Text
    documents: Document | Annotated[list[Document], Field(max_length=MAX_DOCUMENTS)]
    #: How many results to return, best first (None or 0, as vLLM's default: all).
    top_n: int | None = Field(None, ge=0)
    #: Each result carries its document (as vLLM's always do) unless this is false.
    return_documents: bool = True

    @model_validator(mode="after")
    def _some_documents(self) -> RerankRequest:
        if self.documents == []:
            raise APIError("documents must hold at least one document", param="documents")
        return self

    def texts(self) -> list[str]:
        """The documents' texts, in order."""
        items = self.documents if isinstance(self.documents, list) else [self.documents]
        return [item if isinstance(item, str) else item.text for item in items]


class ScoreRequest(ScoringFields):
    """``text_1`` against ``text_2``: one against one, one against N, or N pairs."""

    text_1: _Text | _Texts
    text_2: _Text | _Texts

    @model_validator(mode="after")
    def _pairs_line_up(self) -> ScoreRequest:
        first, second = self.firsts(), self.seconds()
        if len(first) > 1 and len(first) != len(second):
            raise APIError(
                f"text_1 has {len(first)} texts and text_2 has {len(second)}: give one text_1 "
                "for any number of text_2, or as many of each (pairs).",
                param="text_1",
            )
        return self

    def firsts(self) -> list[str]:
        return [self.text_1] if isinstance(self.text_1, str) else list(self.text_1)

    def seconds(self) -> list[str]:
        return [self.text_2] if isinstance(self.text_2, str) else list(self.text_2)
