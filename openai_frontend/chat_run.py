"""One chat generation, started: the pipeline every chat-shaped API runs.

Chat Completions, the Responses API and Anthropic's Messages API are dialects: each
translates its request into a :class:`ChatCompletionRequest`, calls :func:`start_chat`,
and encodes the run's parsed deltas in its own shape. Rendering, tokenizing, sampling,
admission, metrics and engine aborts happen here once, so no dialect copies them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from fastapi import Request

from engines.base import Engine, SamplingParams, StructuredOutput
from openai_frontend.chat_output import ChoiceOutputs
from openai_frontend.chat_tools import ChatPlan, plan_and_render
from openai_frontend.choices import Reply
from openai_frontend.errors import APIError
from openai_frontend.generation import ChoiceDelta, check_fan_out, choice_requests
from openai_frontend.jsonbody import is_large
from openai_frontend.parsing.validation import NAME_RULE
from openai_frontend.priority import request_priority, served_tier
from openai_frontend.reasoning_constraint import constrained_field
from openai_frontend.sampling import build_sampling, token_budget
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.state import Target, get_state, log_fields, new_id, now


@dataclass
class ChatRun:
    """A started generation: its deltas, the parser stage that reads them, and what the
    response head needs. Closing ``deltas`` aborts the request in the engine."""

    body: ChatCompletionRequest
    reply: Reply
    outputs: ChoiceOutputs
    deltas: AsyncIterator[ChoiceDelta]
    prompt: str


@dataclass(frozen=True)
class PreparedChat:
    """A chat request rendered, tokenized and turned into sampling: everything a generation
    needs except the engine. The render endpoint answers with it, so its tokens are
    generation's own."""

    target: Target
    plan: ChatPlan
    prompt: str
    prompt_ids: list[int]
    sampling: SamplingParams
    priority: int


async def start_chat(
    body: ChatCompletionRequest,
    request: Request,
    *,
    id_prefix: str = "chatcmpl",
    limit_param: str | None = None,
    reasoning_param: str | None = None,
) -> ChatRun:
    """Render, tokenize, build sampling and start the engine; 4xx before any byte is sent."""
    prepared = await prepare_chat(
        body, request, limit_param=limit_param, reasoning_param=reasoning_param
    )
    return await launch_chat(body, prepared, request, reply_id=new_id(id_prefix))


async def launch_chat(
    body: ChatCompletionRequest,
    prepared: PreparedChat,
    request: Request,
    *,
    reply_id: str,
    watch_client: bool = True,
) -> ChatRun:
    """Start the engine on a prepared request (admission, metrics, first delta).

    Split from :func:`prepare_chat` so a dialect can answer between the two: a
    background request hears its 4xx from preparing, then its generation is launched
    apart from the connection (``watch_client=False``: leaving does not abort it).
    """
    target, prompt_ids = prepared.target, prepared.prompt_ids
    outputs = ChoiceOutputs(prepared.plan, prepared.prompt, body.n)
    reply = Reply(
        reply_id,
        now(),
        body.model,
        len(prompt_ids),
        body.n,
        body.logprobs,
        served_tier(body.service_tier, prepared.priority),
    )
    requests = choice_requests(
        reply.id, [prompt_ids], prepared.sampling, body.n, target.adapter, body.prompt_cache_key
    )
    deltas = await get_state(request).generate(
        target, requests, len(prompt_ids), request, watch_client=watch_client
    )
    return ChatRun(body, reply, outputs, deltas, prepared.prompt)


async def prepare_chat(
    body: ChatCompletionRequest,
    request: Request,
    *,
    limit_param: str | None = None,
    reasoning_param: str | None = None,
) -> PreparedChat:
    """Render, tokenize and build sampling; 4xx for a request that cannot run.

    ``limit_param`` names the dialect's own token-limit field in a too-long error
    (``max_output_tokens``, Anthropic's ``max_tokens``). ``reasoning_param`` names the
    field that asked for reasoning (Anthropic's ``thinking``): a model without a
    reasoning parser could never answer it, so that is a 400 naming the field.
    """
    state = get_state(request)
    target = state.model(body.model)
    info = target.info
    if body.top_logprobs is not None and not body.logprobs:
        raise APIError("top_logprobs requires logprobs to be true", param="top_logprobs")
    check_fan_out(1, body.n, state.config)
    plan, prompt = await plan_and_render(
        body,
        target.served.resolver,
        target.served.config,
        large=is_large(request),
        grammar_waits_for_reasoning=waits_for_reasoning(target.engine),
    )
    constraint = plan.structured_output or structured_output(body)
    plan = plan.for_engine(target.engine.supported_sampling, constraint is not None)
    if reasoning_param is not None and not plan.reports_reasoning:
        raise APIError(
            f"{reasoning_param} is not supported by this model: it has no reasoning parser "
            "(start the server with --reasoning-parser for a model that reasons).",
            param=reasoning_param,
        )
    if state.config.log_prompts:
        log_fields(request)["prompt"] = prompt
    prompt_ids = await state.tokenize(target, prompt, add_special_tokens=False)
    priority = request_priority(body.priority, body.service_tier, state.config.scheduling_policy)
    if limit_param is None:
        limit_param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
    sampling = build_sampling(
        body,
        max_tokens=token_budget(
            body.token_limit(),
            len(prompt_ids),
            info.max_model_len,
            limit_param,
            # --override-generation-config's max_tokens caps a request that sets none
            # (Codex sends no limit: without it a reply may fill the whole window).
            default=target.served.sampling_defaults.get("max_tokens"),
        ),
        defaults=target.served.sampling_defaults,
        supported=target.engine.supported_sampling,
        logprobs=(body.top_logprobs or 0) if body.logprobs else None,
        structured_output=constraint,
        structural_tag=plan.strict_tag,
        priority=priority,
    )
    if sampling.skip_special_tokens != plan.skip_special_tokens:
        sampling = replace(sampling, skip_special_tokens=plan.skip_special_tokens)
    sampling = _constrain_after_reasoning(sampling, plan, prompt, target.engine)
    return PreparedChat(target, plan, prompt, prompt_ids, sampling, priority)


def waits_for_reasoning(engine: Engine) -> bool:
    """Whether the engine can start a grammar where the reply's reasoning ends."""
    return "constraint_after_reasoning" in engine.supported_sampling


def _constrain_after_reasoning(
    sampling: SamplingParams, plan: ChatPlan, prompt: str, engine: Engine
) -> SamplingParams:
    """``sampling`` with the grammar's start after the reasoning, where the reply has
    reasoning to wait for; a 400 naming the constrained field if the engine cannot wait
    (its template turned thinking off, yet the prompt did not close the reasoning)."""
    start = plan.constraint_after_reasoning(prompt)
    if start is None:
        return sampling
    if not waits_for_reasoning(engine):
        field = constrained_field(plan.request)
        raise APIError(
            f"{field} constrains the reply with a grammar, and the engine serving this "
            "model cannot start it after the reasoning the prompt leaves open.",
            param=field,
            code="unsupported_parameter",
        )
    return replace(sampling, constraint_after_reasoning=start)


def structured_output(body: ChatCompletionRequest) -> StructuredOutput | None:
    """``response_format`` as the engine's constraint (None for plain text).

    A ``json_schema`` constrains decoding with ``strict`` true or false: OpenAI promises
    nothing of a non-strict reply, and a reply that matches breaks no promise. Its
    ``name`` is checked as OpenAI checks it; it names the schema for the client and
    changes no token.
    """
    response_format = body.response_format
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return StructuredOutput(json_object=True)
    spec = response_format.json_schema or {}
    _check_schema_fields(spec)
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise APIError(
            "response_format json_schema needs a 'schema' object",
            param="response_format.json_schema.schema",
        )
    return StructuredOutput(json_schema=schema)


def _check_schema_fields(spec: dict) -> None:
    """OpenAI's 400s for ``response_format.json_schema``'s ``name`` and ``strict``."""
    name = spec.get("name")
    if name is None:
        raise APIError(
            "Missing required parameter: 'response_format.json_schema.name'.",
            param="response_format.json_schema.name",
        )
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        raise APIError(
            "Invalid 'response_format.json_schema.name': must be 1 to 64 characters of "
            "a-z, A-Z, 0-9, _ and -.",
            param="response_format.json_schema.name",
        )
    if not isinstance(spec.get("strict", False), bool | None):
        raise APIError(
            "Invalid type for 'response_format.json_schema.strict': expected a boolean.",
            param="response_format.json_schema.strict",
        )
