"""``POST /tokenize`` and ``POST /detokenize``: see exactly what a template made."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.responses import Response

from openai_frontend.chat_run import waits_for_reasoning
from openai_frontend.chat_tools import plan_and_render
from openai_frontend.errors import APIError
from openai_frontend.jsonbody import OffLoopJSONRoute, is_large
from openai_frontend.jsonresponse import json_response
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.schemas.common import StrictModel
from openai_frontend.state import get_state

router = APIRouter(route_class=OffLoopJSONRoute)


class TokenizeChatRequest(ChatCompletionRequest):
    """A chat request (only its template fields matter here)."""


class TokenizePromptRequest(StrictModel):
    model: str
    prompt: str
    add_special_tokens: bool = True


class DetokenizeRequest(StrictModel):
    model: str
    tokens: list[int] = Field(min_length=0)


@router.post("/tokenize")
async def tokenize(body: TokenizeChatRequest | TokenizePromptRequest, request: Request) -> Response:
    state = get_state(request)
    target = state.model(body.model, task=None)  # embedding models tokenize too
    info = target.info
    if isinstance(body, TokenizePromptRequest):
        prompt, special = body.prompt, body.add_special_tokens
    else:
        served = target.served
        _, prompt = await plan_and_render(
            body,
            served.resolver,
            served.config,
            large=is_large(request),
            grammar_waits_for_reasoning=waits_for_reasoning(target.engine),
        )
        special = False
    tokens = await state.tokenize(target, prompt, add_special_tokens=special)
    return json_response(
        {
            "count": len(tokens),
            "max_model_len": info.max_model_len,
            "tokens": tokens,
            "prompt": prompt,
        }
    )


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, request: Request) -> Response:
    state = get_state(request)
    target = state.model(body.model, task=None)
    try:
        return json_response({"prompt": target.engine.detokenize(body.tokens)})
    except (ValueError, OverflowError, TypeError) as exc:
        raise APIError(f"tokens cannot be decoded: {exc}", param="tokens") from None
