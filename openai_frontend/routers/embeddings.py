"""``POST /v1/embeddings``: vectors for text or token ids, as floats or base64.

Inputs are tokenized here with the model's own tokenizer (as every prompt is), so usage
is counted and over-long inputs are refused before the engine sees them; then the whole
batch goes to the engine at once.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import sys
from array import array

from fastapi import APIRouter, Request
from starlette.responses import Response

from engines.base import Engine
from openai_frontend.disconnect import cancel_on_disconnect
from openai_frontend.embedding_run import run_embedding
from openai_frontend.errors import APIError
from openai_frontend.jsonbody import OffLoopJSONRoute
from openai_frontend.jsonresponse import json_response
from openai_frontend.schemas.embeddings import EmbeddingRequest
from openai_frontend.state import LONG_TEXT_CHARS, ServerState, Target, get_state, log_fields

router = APIRouter(route_class=OffLoopJSONRoute)

#: OpenAI's cap on the tokens of all inputs of one request together.
MAX_TOTAL_TOKENS = 300_000


@router.post("/v1/embeddings")
async def create_embeddings(body: EmbeddingRequest, request: Request) -> Response:
    state = get_state(request)
    target = state.model(body.model, task="embed")
    inputs = await _token_ids(state, target, body)
    if state.config.log_prompts:
        log_fields(request)["prompt"] = body.inputs()
    vectors = await cancel_on_disconnect(
        request, run_embedding(state, target, inputs, body.dimensions, log_fields(request))
    )
    as_base64 = body.encoding_format == "base64"
    prompt_tokens = sum(map(len, inputs))
    return json_response(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": _encoded(vector, as_base64)}
                for index, vector in enumerate(vectors)
            ],
            "model": body.model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }
    )


async def _token_ids(state: ServerState, target: Target, body: EmbeddingRequest) -> list[list[int]]:
    """Each input's token ids, truncated when asked, else refused when over the context.

    Texts are tokenized in one worker thread when there is much of them (thousands of
    short inputs add up to seconds of tokenizing, which would stall every stream), and
    tokenizing stops as soon as the request is past ``MAX_TOTAL_TOKENS``.
    """
    context = target.info.max_model_len
    keep = context if body.truncate_prompt_tokens == -1 else body.truncate_prompt_tokens
    if keep is not None and keep > context:
        raise APIError(
            f"truncate_prompt_tokens ({keep}) is larger than this model's maximum context "
            f"length ({context} tokens).",
            param="truncate_prompt_tokens",
        )
    items = body.inputs()
    tokenize = functools.partial(_tokenized, target.engine, items, keep, context)
    text = sum(len(item) for item in items if isinstance(item, str))
    return await asyncio.to_thread(tokenize) if text >= LONG_TEXT_CHARS else tokenize()


def _tokenized(
    engine: Engine, items: list[str | list[int]], keep: int | None, context: int
) -> list[list[int]]:
    inputs = []
    total = 0
    for index, item in enumerate(items):
        ids = engine.tokenize(item, True) if isinstance(item, str) else item
        ids = ids[:keep] if keep is not None else ids
        if len(ids) > context:
            raise APIError(
                f"This model's maximum context length is {context} tokens, but input {index} "
                f"has {len(ids)} tokens. Shorten it, or set truncate_prompt_tokens.",
                param="input",
                code="context_length_exceeded",
            )
        total += len(ids)
        if total > MAX_TOTAL_TOKENS:
            where = "in all" if index + 1 == len(items) else f"in its first {index + 1} inputs"
            raise APIError(
                f"This request has {total} tokens {where} (of {len(items)} inputs); at most "
                f"{MAX_TOTAL_TOKENS} tokens are allowed in one request. Send fewer inputs.",
                param="input",
            )
        inputs.append(ids)
    return inputs


def _encoded(vector: list[float], as_base64: bool) -> list[float] | str:
    """The floats, or base64 of their little-endian float32 bytes (what the OpenAI SDK
    decodes with ``numpy.frombuffer``; it asks for base64 by default)."""
    if not as_base64:
        return vector
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")
