"""A prompt given as text or token ids, validated in Python on purpose.

pydantic checks a list of ints in one Rust call that holds the GIL from start to end.
Bodies that large are validated in a worker thread (:mod:`openai_frontend.jsonbody`),
but a thread holding the GIL stops the event loop all the same: a prompt of 500,000
token ids held it 0.25 s. Python code lets the GIL go every few milliseconds, and a loop
over ints costs about as much as pydantic's check.

The shapes are OpenAI's: a string, a list of strings, a list of token ids, or a list of
lists of token ids; none of them empty.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

Prompt = str | list[str] | list[int] | list[list[int]]

_SHAPES = "a string, a list of strings, a list of token ids or a list of token-id lists"


def _invalid(message: str) -> PydanticCustomError:
    """An error whose message is shown as is (a ``ValueError`` gets "Value error, ")."""
    return PydanticCustomError("invalid_prompt", message)


def _text(value: Any, non_empty: bool) -> str:
    if not isinstance(value, str):
        raise _invalid(f"must be {_SHAPES}; an item is {type(value).__name__}")
    if non_empty and not value:
        raise _invalid("texts must not be empty")
    return value


def _token_ids(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _invalid("a token-id list must be a non-empty list of integers")
    for token in value:
        if type(token) is not int or token < 0:  # bool is not a token id
            raise _invalid(f"token ids are integers from 0, got {token!r}")
    return value


def _prompt(value: Any, *, non_empty_text: bool) -> Prompt:
    if isinstance(value, str):
        return _text(value, non_empty_text)
    if not isinstance(value, list):
        raise _invalid(f"must be {_SHAPES}")
    if not value:
        raise _invalid("must not be empty")
    first = value[0]
    if isinstance(first, list):
        return [_token_ids(item) for item in value]
    if type(first) is int:
        return _token_ids(value)
    return [_text(item, non_empty_text) for item in value]


def _schema(non_empty_text: bool) -> dict[str, Any]:
    text = {"type": "string", "minLength": 1} if non_empty_text else {"type": "string"}
    ids = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
    shapes = [text, {"type": "array", "items": text, "minItems": 1}, ids]
    return {"anyOf": [*shapes, {"type": "array", "items": ids, "minItems": 1}]}


def prompt_field(*, non_empty_text: bool) -> Any:
    """The annotated type of a ``prompt`` (completions) or ``input`` (embeddings) field."""
    return Annotated[
        Prompt,
        PlainValidator(partial(_prompt, non_empty_text=non_empty_text)),
        WithJsonSchema(_schema(non_empty_text)),
    ]
