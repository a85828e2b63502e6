"""``POST /v1/embeddings``: vectors for text or token ids, as floats or base64.

Inputs are tokenized here (openai_frontend.pooling_inputs), so usage is counted and
over-long inputs are refused before the engine sees them; then the whole batch goes to
the engine at once.
"""

from __future__ import annotations

import base64
import sys
from array import array

from fastapi import APIRouter, Request
from starlette.responses import Response

from openai_frontend.disconnect import cancel_on_disconnect
from openai_frontend.embedding_run import run_embedding
from openai_frontend.jsonbody import OffLoopJSONRoute
from openai_frontend.jsonresponse import json_response
from openai_frontend.pooling_inputs import kept_tokens, token_ids
from openai_frontend.schemas.embeddings import EmbeddingRequest
from openai_frontend.state import ServerState, Target, get_state, log_fields

router = APIRouter(route_class=OffLoopJSONRoute)


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
    """Each input's token ids, truncated when asked, else refused when over the context."""
    context = target.info.max_model_len
    keep = kept_tokens(body.truncate_prompt_tokens, context, "truncate_prompt_tokens")
    return await token_ids(target.engine, body.inputs(), keep, context)


def _encoded(vector: list[float], as_base64: bool) -> list[float] | str:
    """The floats, or base64 of their little-endian float32 bytes (what the OpenAI SDK
    decodes with ``numpy.frombuffer``; it asks for base64 by default)."""
    if not as_base64:
        return vector
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")
