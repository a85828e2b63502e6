"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: Anthropic's Messages API.

A thin dialect: the request is translated into a chat request and run through
:func:`openai_frontend.chat_run.start_chat`, the one pipeline chat uses, and its parsed
deltas are encoded as Anthropic's events. Errors on these paths take Anthropic's shape
(:func:`openai_frontend.errors.error_payload`).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from openai_frontend.anthropic.encode import ANTHROPIC_ENDING, event_stream, whole_message
from openai_frontend.anthropic.errors import speaks_anthropic
from openai_frontend.anthropic.translate import to_chat
from openai_frontend.chat_run import start_chat
from openai_frontend.chat_tools import plan_and_render
from openai_frontend.disconnect import cancel_on_disconnect
from openai_frontend.jsonbody import OffLoopJSONRoute, in_thread_if_large, is_large
from openai_frontend.jsonresponse import json_response
from openai_frontend.middleware import RequestIdAlias
from openai_frontend.schemas.messages import CountTokensRequest, MessagesRequest, ThinkingEnabled
from openai_frontend.state import get_state
from openai_frontend.streaming import sse_response

router = APIRouter(route_class=OffLoopJSONRoute)

#: Anthropic's name for the request id, on every response of these paths (errors and
#: count_tokens too); its SDKs expose it as ``_request_id``.
REQUEST_ID_ALIAS = RequestIdAlias("request-id", speaks_anthropic)


@router.post("/v1/messages")
async def create_message(body: MessagesRequest, request: Request) -> Response:
    run = await start_chat(
        await in_thread_if_large(request, to_chat, body),
        request,
        id_prefix="msg",
        limit_param="max_tokens",
        reasoning_param="thinking" if isinstance(body.thinking, ThinkingEnabled) else None,
    )
    if body.stream:
        config = get_state(request).config
        return sse_response(event_stream(run), config, ending=ANTHROPIC_ENDING)
    return json_response(await cancel_on_disconnect(request, whole_message(run)))


@router.post("/v1/messages/count_tokens")
async def count_tokens(body: CountTokensRequest, request: Request) -> Response:
    """The prompt's tokens, rendered exactly as ``/v1/messages`` would render it."""
    state = get_state(request)
    target = state.model(body.model)
    served = target.served
    chat = await in_thread_if_large(request, to_chat, body)
    _, prompt = await plan_and_render(chat, served.resolver, served.config, large=is_large(request))
    tokens = await state.tokenize(target, prompt, add_special_tokens=False)
    return json_response({"input_tokens": len(tokens)})
