"""``POST /v1/completions``: prompts as text or token ids, answered as a body or a stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import Response

from engines.base import SamplingParams, TokenLogprob
from openai_frontend.choices import Choice, Reply, cached_tokens, finish_reason, usage
from openai_frontend.disconnect import cancel_on_disconnect
from openai_frontend.errors import APIError
from openai_frontend.generation import ChoiceDelta, check_fan_out, choice_requests
from openai_frontend.jsonbody import OffLoopJSONRoute
from openai_frontend.jsonresponse import json_response
from openai_frontend.logprobs import (
    as_token_ids,
    completion_logprobs,
    echoed_completion_logprobs,
    vllm_prompt_logprobs,
    with_top,
)
from openai_frontend.priority import request_priority
from openai_frontend.sampling import build_sampling, token_budget
from openai_frontend.schemas.completions import CompletionRequest
from openai_frontend.state import ServerState, Target, get_state, log_fields, new_id, now
from openai_frontend.streaming import ChunkFramer, sse_response

router = APIRouter(route_class=OffLoopJSONRoute)

#: OpenAI's default ``max_tokens`` for completions (chat's is the rest of the context).
DEFAULT_MAX_TOKENS = 16


@dataclass(frozen=True)
class _Reply(Reply):
    #: Text to put before each choice's completion (``echo``), by prompt.
    echoes: tuple[str, ...] = ()
    #: Each prompt's first token's text (``echo`` with ``logprobs``: it has no logprob).
    first_tokens: tuple[str, ...] = ()
    #: ``logprobs``: alternatives per token in the legacy ``logprobs`` field.
    top_logprobs: int = 0
    #: vLLM's ``prompt_logprobs``: alternatives per prompt token in that reply field.
    prompt_top: int | None = None
    #: ``max_tokens: 0`` with ``echo``: the prompt is scored, the token the engine had to
    #: generate for it is dropped (text, logprobs, usage), and the choice ends "length".
    score_only: bool = False
    #: vLLM's ``return_tokens_as_token_ids``: logprob tokens named ``"token_id:N"`` (what
    #: a gateway's remote engine asks an upstream for, to read tokens by id).
    token_ids: bool = False

    def named(self, tokens: list[TokenLogprob | None]) -> list[TokenLogprob | None]:
        return as_token_ids(tokens) if self.token_ids else tokens

    def echo(self, index: int) -> str:
        return self.echoes[index // self.n] if self.echoes else ""


@dataclass(frozen=True)
class PreparedCompletion:
    """A completions request's prompts tokenized and its sampling built: everything a
    generation needs except the engine (the render endpoint answers with it)."""

    target: Target
    prompts: list[list[int]]
    sampling: SamplingParams


async def prepare_completion(body: CompletionRequest, request: Request) -> PreparedCompletion:
    """Tokenize each prompt and build sampling; 4xx for a request that cannot run."""
    state = get_state(request)
    target = state.model(body.model)
    _reject_unimplemented(body)
    check_fan_out(len(body.prompts()), body.n, state.config)
    prompts = [await _prompt_ids(state, target, item) for item in body.prompts()]
    if state.config.log_prompts:
        log_fields(request)["prompt"] = body.prompts()
    longest = max(len(ids) for ids in prompts)
    max_tokens = token_budget(
        body.token_limit(),
        longest,
        target.info.max_model_len,
        "max_tokens",
        default=DEFAULT_MAX_TOKENS,
    )
    sampling = build_sampling(
        body,
        # An engine cannot score a prompt without generating a token: one, then dropped.
        max_tokens=max(max_tokens, 1),
        defaults=target.served.sampling_defaults,
        supported=target.engine.supported_sampling,
        logprobs=body.logprobs,
        prompt_logprobs=_prompt_scoring(body),
        structured_output=body.structured_outputs.constraint() if body.structured_outputs else None,
        priority=request_priority(body.priority, None, state.config.scheduling_policy),
    )
    return PreparedCompletion(target, prompts, sampling)


@router.post("/v1/completions")
async def create_completion(body: CompletionRequest, request: Request) -> Response:
    state = get_state(request)
    prepared = await prepare_completion(body, request)
    target, prompts, sampling = prepared.target, prepared.prompts, prepared.sampling
    echoes = tuple(target.engine.detokenize(ids) for ids in prompts) if body.echo else ()
    reply = _Reply(
        new_id("cmpl"),
        now(),
        body.model,
        sum(map(len, prompts)),
        body.n,
        body.logprobs is not None,
        echoes=echoes,
        first_tokens=(
            _first_tokens(target, prompts, body.return_tokens_as_token_ids)
            if body.echo and body.logprobs is not None
            else ()
        ),
        top_logprobs=body.logprobs or 0,
        prompt_top=body.prompt_logprobs,
        score_only=body.token_limit() == 0,
        token_ids=body.return_tokens_as_token_ids,
    )
    requests = choice_requests(reply.id, prompts, sampling, body.n, target.adapter)
    deltas = await state.generate(target, requests, reply.prompt_tokens, request)
    if body.stream:
        return sse_response(
            _stream(deltas, reply, len(requests), body.include_usage()), state.config
        )
    return json_response(
        await cancel_on_disconnect(request, _collect(deltas, reply, len(requests)))
    )


def _reject_unimplemented(body: CompletionRequest) -> None:
    if body.best_of is not None and body.best_of < body.n:
        raise APIError("best_of must be greater than or equal to n", param="best_of")
    if body.best_of is not None and body.best_of > body.n:
        raise APIError(
            "best_of greater than n is not supported by this server",
            param="best_of",
            code="unsupported_parameter",
        )
    if body.suffix:
        raise APIError(
            "suffix is not supported by this model", param="suffix", code="unsupported_parameter"
        )
    if body.max_tokens == 0 and not body.echo:
        raise APIError(
            "max_tokens 0 scores the prompt without generating, so it needs echo: true",
            param="max_tokens",
        )
    if body.prompt_logprobs is not None and body.stream:
        raise APIError(
            "prompt_logprobs are not available when stream is true",
            param="prompt_logprobs",
            code="unsupported_parameter",
        )
    if body.echo and body.logprobs is not None and body.stream:
        raise APIError(
            "echo together with logprobs is served without stream only",
            param="stream",
            code="unsupported_parameter",
        )


def _prompt_scoring(body: CompletionRequest) -> int | None:
    """Alternatives the engine scores each prompt token with: echo with logprobs lists the
    prompt (lm-evaluation-harness's loglikelihood), vLLM's prompt_logprobs asks directly;
    both at once take the larger count, and each field is cut to its own."""
    counts = [body.prompt_logprobs, body.logprobs if body.echo else None]
    return max((count for count in counts if count is not None), default=None)


def _first_tokens(target: Target, prompts: list[list[int]], by_id: bool) -> tuple[str, ...]:
    if by_id:
        return tuple(f"token_id:{ids[0]}" for ids in prompts)
    return tuple(target.engine.detokenize(ids[:1]) for ids in prompts)


async def _prompt_ids(state: ServerState, target: Target, item: str | list[int]) -> list[int]:
    if isinstance(item, str):
        item = await state.tokenize(target, item, add_special_tokens=True)
    ids = item
    if not ids:
        raise APIError("The prompt is empty.", param="prompt")
    return ids


async def _collect(deltas: AsyncIterator[ChoiceDelta], reply: _Reply, count: int) -> dict:
    choices = [Choice() for _ in range(count)]
    async with aclosing(deltas):
        async for index, delta in deltas:
            choices[index].add(delta)
    return {
        **reply.head("text_completion"),
        "choices": [_choice(reply, index, choice) for index, choice in enumerate(choices)],
        "usage": usage(
            reply.prompt_tokens,
            0 if reply.score_only else sum(c.completion_tokens for c in choices),
            cached_tokens(choices, reply.n),
        ),
    }


def _choice(reply: _Reply, index: int, choice: Choice) -> dict:
    body = {
        "index": index,
        "text": reply.echo(index) + ("" if reply.score_only else choice.text),
        "logprobs": _logprobs(reply, index, choice),
        "finish_reason": "length" if reply.score_only else finish_reason(choice.finish_reason),
    }
    if reply.prompt_top is not None:
        body["prompt_logprobs"] = vllm_prompt_logprobs(
            choice.prompt_logprobs or [], reply.prompt_top
        )
    return body


def _logprobs(reply: _Reply, index: int, choice: Choice) -> dict | None:
    if not reply.logprobs:
        return None
    if not reply.first_tokens:
        return completion_logprobs(reply.named(choice.logprobs), 0)
    first = reply.first_tokens[index // reply.n]
    prompt = reply.named(with_top(choice.prompt_logprobs or [], reply.top_logprobs))
    generated = [] if reply.score_only else reply.named(choice.logprobs)
    return echoed_completion_logprobs(first, prompt, generated)


async def _stream(
    deltas: AsyncIterator[ChoiceDelta], reply: _Reply, count: int, include_usage: bool
) -> AsyncIterator[bytes]:
    framer = ChunkFramer(reply.head("text_completion"), include_usage)
    counts = [Choice() for _ in range(count)]
    text_offsets = [0] * count
    async with aclosing(deltas):
        if reply.echoes:
            for index in range(count):
                yield framer.choice(_chunk(index, reply.echo(index), None, None))
        async for index, delta in deltas:
            counts[index].count(delta)
            if reply.score_only or not (delta.text or delta.logprobs or delta.finish_reason):
                continue
            logprobs = None
            if reply.logprobs:
                tokens = reply.named(delta.logprobs or [])
                logprobs = completion_logprobs(tokens, text_offsets[index])
                text_offsets[index] += sum(len(t.token) for t in tokens)
            reason = finish_reason(delta.finish_reason) if delta.finish_reason else None
            yield framer.choice(_chunk(index, delta.text, logprobs, reason))
        if reply.score_only:
            for index in range(count):
                yield framer.choice(_chunk(index, "", None, "length"))
    if include_usage:
        completion_tokens = 0 if reply.score_only else sum(c.completion_tokens for c in counts)
        yield framer.usage(
            usage(reply.prompt_tokens, completion_tokens, cached_tokens(counts, reply.n))
        )


def _chunk(index: int, text: str, logprobs: dict | None, reason: str | None) -> dict:
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": reason}
