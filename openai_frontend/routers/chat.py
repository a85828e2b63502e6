"""``POST /v1/chat/completions``: render, generate, and answer as a body or a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from fastapi import APIRouter, Request
from starlette.responses import Response

from engines.base import StructuredOutput
from openai_frontend.chat_output import ChoiceOutputs
from openai_frontend.chat_tools import plan_and_render
from openai_frontend.choices import Reply
from openai_frontend.disconnect import cancel_on_disconnect
from openai_frontend.errors import APIError
from openai_frontend.generation import ChoiceDelta, check_fan_out, choice_requests
from openai_frontend.jsonbody import OffLoopJSONRoute
from openai_frontend.jsonresponse import json_response
from openai_frontend.logprobs import chat_logprobs
from openai_frontend.sampling import build_sampling, token_budget
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.state import get_state, log_fields, new_id, now
from openai_frontend.streaming import ChunkFramer, sse_response

router = APIRouter(route_class=OffLoopJSONRoute)


@router.post("/v1/chat/completions")
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    state = get_state(request)
    target = state.model(body.model)
    info = target.info
    _reject_unimplemented(body)
    check_fan_out(1, body.n, state.config)
    plan, prompt = await plan_and_render(body, target.served.resolver, target.served.config)
    if state.config.log_prompts:
        log_fields(request)["prompt"] = prompt
    prompt_ids = await state.tokenize(target, prompt, add_special_tokens=False)
    limit_param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
    sampling = build_sampling(
        body,
        max_tokens=token_budget(
            body.token_limit(), len(prompt_ids), info.max_model_len, limit_param
        ),
        defaults=target.served.sampling_defaults,
        supported=target.engine.supported_sampling,
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        structured_output=plan.structured_output or _structured_output(body),
    )
    outputs = ChoiceOutputs(plan, prompt, body.n)
    reply = Reply(new_id("chatcmpl"), now(), body.model, len(prompt_ids), body.n, body.logprobs)
    requests = choice_requests(reply.id, [prompt_ids], sampling, body.n, target.adapter)
    deltas = await state.generate(target, requests, len(prompt_ids), log_fields(request))
    if body.stream:
        return sse_response(
            _stream(deltas, reply, body.include_usage(), outputs), state.config.drain_timeout
        )
    return json_response(await cancel_on_disconnect(request, _collect(deltas, reply, outputs)))


def _reject_unimplemented(body: ChatCompletionRequest) -> None:
    """Fields the API has but this server cannot honour yet: refused, never dropped."""
    if body.top_logprobs is not None and not body.logprobs:
        raise APIError("top_logprobs requires logprobs to be true", param="top_logprobs")
    if body.store:
        raise APIError("store is not supported by this server", param="store")


def _structured_output(body: ChatCompletionRequest) -> StructuredOutput | None:
    response_format = body.response_format
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return StructuredOutput(json_object=True)
    spec = response_format.json_schema or {}
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise APIError(
            "response_format json_schema needs a 'schema' object",
            param="response_format.json_schema.schema",
        )
    return StructuredOutput(json_schema=schema)


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
        if parsed or delta.logprobs:
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
