"""Texts (or token ids) of a pooling request as token ids: counted, capped and truncated.

Shared by ``/v1/embeddings``, ``/v1/rerank`` and ``/v1/score``: inputs are tokenized here
with the model's own tokenizer (as every prompt is), so usage is counted and an over-long
input is refused, with both numbers, before the engine sees any of the request.
"""

from __future__ import annotations

import asyncio
import functools

from engines.base import Engine
from openai_frontend.errors import APIError
from openai_frontend.state import LONG_TEXT_CHARS

#: OpenAI's cap on the tokens of all inputs of one request together.
MAX_TOTAL_TOKENS = 300_000


def kept_tokens(value: int | None, context: int, param: str) -> int | None:
    """How many tokens of each input a truncation field ``param`` keeps (-1: the
    context; None: no truncation); a 400 when it asks for more than the context."""
    keep = context if value == -1 else value
    if keep is not None and keep > context:
        raise APIError(
            f"{param} ({keep}) is larger than this model's maximum context "
            f"length ({context} tokens).",
            param=param,
        )
    return keep


async def token_ids(
    engine: Engine,
    items: list[str | list[int]],
    keep: int | None,
    context: int,
    param: str = "input",
    spent: int = 0,
) -> list[list[int]]:
    """Each item's token ids, in a worker thread when there is much text (thousands of
    short inputs add up to seconds of tokenizing, which would stall every stream)."""
    tokenize = functools.partial(tokenized, engine, items, keep, context, param, spent)
    text = sum(len(item) for item in items if isinstance(item, str))
    return await asyncio.to_thread(tokenize) if text >= LONG_TEXT_CHARS else tokenize()


def tokenized(
    engine: Engine,
    items: list[str | list[int]],
    keep: int | None,
    context: int,
    param: str = "input",
    spent: int = 0,
) -> list[list[int]]:
    """Token ids, truncated to ``keep``, else refused when over the context; tokenizing
    stops as soon as the request is past ``MAX_TOTAL_TOKENS``, counting the ``spent``
    tokens of its other inputs."""
    inputs = []
    total = spent
    for index, item in enumerate(items):
        ids = engine.tokenize(item, True) if isinstance(item, str) else item
        ids = ids[:keep] if keep is not None else ids
        if len(ids) > context:
            raise APIError(
                f"This model's maximum context length is {context} tokens, but {param} {index} "
                f"has {len(ids)} tokens. Shorten it, or set truncate_prompt_tokens.",
                param=param,
                code="context_length_exceeded",
            )
        total += len(ids)
        if total > MAX_TOTAL_TOKENS:
            where = "in all" if index + 1 == len(items) else f"in its first {index + 1} inputs"
            raise APIError(
                f"This request has {total} tokens {where} (of {len(items)} inputs); at most "
                f"{MAX_TOTAL_TOKENS} tokens are allowed in one request. Send fewer inputs.",
                param=param,
            )
        inputs.append(ids)
    return inputs
