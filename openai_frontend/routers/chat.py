"""``POST /v1/chat/completions``: render, generate, and answer as a body or a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from fastapi import APIRouter, Request
from starlette.responses import Response

from openai_frontend.chat_output import ChoiceOutputs
from openai_frontend.chat_run import start_chat
from openai_frontend.choices import Reply
from openai_frontend.disconnect import cancel_on_disconnect
from openai_frontend.errors import APIError
from openai_frontend.generation import ChoiceDelta
from openai_frontend.jsonbody import OffLoopJSONRoute
from openai_frontend.jsonresponse import json_response
from openai_frontend.logprobs import chat_logprobs
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.state import get_state
from openai_frontend.streaming import ChunkFramer, sse_response

router = APIRouter(route_class=OffLoopJSONRoute)


@router.post("/v1/chat/completions")
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    if body.store:
        raise APIError(
            "store: true is not supported on /v1/chat/completions: this server keeps no "
            "chat completions. Send store: false (or leave it out), or use the Responses "
            "API (POST /v1/responses) for stored, stateful conversations.",
            param="store",
            code="unsupported_parameter",
        )
    run = await start_chat(body, request)
    if body.stream:
        return sse_response(
            _stream(run.deltas, run.reply, body.include_usage(), run.outputs),
            get_state(request).config,
        )
    return json_response(
        await cancel_on_disconnect(request, _collect(run.deltas, run.reply, run.outputs))
    )


async def _collect(
    deltas: AsyncIterator[ChoiceDelta], reply: Reply, outputs: ChoiceOutputs
) -> dict:
    async with aclosing(deltas):
        async for index, delta in deltas:
            outputs.collect(index, delta)
    return {
        **reply.head("chat.completion"),
        "choices": [
            {
                "index": index,
                "message": {
                    "role": "assistant",
                    **outputs.message(index),
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": chat_logprobs(choice.logprobs) if reply.logprobs else None,
                "finish_reason": outputs.finish_reason(index),
            }
            for index, choice in enumerate(outputs.choices)
        ],
        "usage": outputs.usage(reply.prompt_tokens),
    }


async def _stream(
    deltas: AsyncIterator[ChoiceDelta], reply: Reply, include_usage: bool, outputs: ChoiceOutputs
) -> AsyncIterator[bytes]:
    framer = ChunkFramer(reply.head("chat.completion.chunk"), include_usage)
    async with aclosing(deltas):
        for index in range(reply.n):
            yield framer.choice(
                {
                    "index": index,
                    "delta": {"role": "assistant", "content": "", "refusal": None},
                    "logprobs": None,
                    "finish_reason": None,
                }
            )
        async for index, delta in deltas:
            parsed = outputs.parse(index, delta)
            if parsed.content and not (parsed.reasoning or parsed.tool_calls or reply.logprobs):
                yield framer.text(index, b"content", parsed.content)
            elif parsed or delta.logprobs:
                yield framer.choice(
                    {
                        "index": index,
                        "delta": parsed.to_openai() or {"content": ""},
                        "logprobs": chat_logprobs(delta.logprobs) if reply.logprobs else None,
                        "finish_reason": None,
                    }
                )
            if delta.finish_reason is not None:
                yield framer.choice(
                    {
                        "index": index,
                        "delta": {},
                        "logprobs": None,
                        "finish_reason": outputs.finish_reason(index),
                    }
                )
    if include_usage:
        yield framer.usage(outputs.usage(reply.prompt_tokens))
