"""``POST /v1/chat/completions/render`` and ``POST /v1/completions/render``: a request's
prompt tokens, as vLLM 0.32 serves them.

Prefix-aware routers (llm-d's precise prefix-cache scorer) tokenize a request through the
model server before they pick one. The answer must be the tokens generation would use,
so these run generation's own preparation (:func:`prepare_chat`,
:func:`prepare_completion`: template, tools, ``chat_template_kwargs``, token budget) and
stop before the engine. The body has the keys of vLLM's ``GenerateRequest``; its
``sampling_params`` are this gateway's engine-neutral ones (vLLM's names where vLLM has
the field), and the fields this gateway has no counterpart for are null.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Request
from starlette.responses import Response

from engines.base import SamplingParams
from openai_frontend.chat_run import prepare_chat
from openai_frontend.jsonbody import OffLoopJSONRoute
from openai_frontend.jsonresponse import json_response
from openai_frontend.routers.completions import prepare_completion
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.schemas.common import SamplingFields
from openai_frontend.schemas.completions import CompletionRequest
from openai_frontend.state import new_id

router = APIRouter(route_class=OffLoopJSONRoute)


@router.post("/v1/chat/completions/render")
async def render_chat(body: ChatCompletionRequest, request: Request) -> Response:
    prepared = await prepare_chat(body, request)
    return json_response(
        _generate_request(new_id("chatcmpl"), prepared.prompt_ids, prepared.sampling, body)
    )


@router.post("/v1/completions/render")
async def render_completion(body: CompletionRequest, request: Request) -> Response:
    prepared = await prepare_completion(body, request)
    base_id = new_id("cmpl")
    many = len(prepared.prompts) > 1
    return json_response(
        [
            _generate_request(f"{base_id}-{i}" if many else base_id, ids, prepared.sampling, body)
            for i, ids in enumerate(prepared.prompts)
        ]
    )


def _generate_request(
    request_id: str, token_ids: list[int], sampling: SamplingParams, body: SamplingFields
) -> dict:
    """One prompt in vLLM's ``GenerateRequest`` shape (``model_dump()``'s keys)."""
    return {
        "request_id": request_id,
        "token_ids": token_ids,
        "token_offsets": None,
        "features": None,
        "content_parts": None,
        "sampling_params": asdict(sampling),
        "model": body.model,
        "reasoning_ended": None,
        "reasoning_parser_kwargs": None,
        "return_token_ids": None,
        "output_mode": "tokens",
        "stream": bool(body.stream),
        "stream_options": (
            body.stream_options.model_dump() if body.stream and body.stream_options else None
        ),
        "cache_salt": None,
        "priority": sampling.priority,
        "kv_transfer_params": None,
        "ec_transfer_params": None,
    }
