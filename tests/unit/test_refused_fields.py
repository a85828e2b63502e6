"""Chat fields the server cannot honour are refused by name, through the real app
(FaultInjectingEngine, no fault injected: only what reaches the engine is checked)."""

from __future__ import annotations

import asyncio

import pytest
from fault_engines import MODEL, FaultInjectingEngine, in_process_client
from spec import assert_valid
from sse import parse_frames

from engines.base import ALL_SAMPLING

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
COMPLETION = {"model": MODEL, "prompt": "hi", "max_tokens": 4}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def _post(path: str, body: dict, **config: object) -> tuple[int, dict, FaultInjectingEngine]:
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def post() -> tuple[int, dict]:
        async with in_process_client(engine, **config) as client:
            response = await client.post(path, json=body)
            if body.get("stream") and response.status_code == 200:
                return 200, {}
            return response.status_code, response.json()

    status, answer = asyncio.run(post())
    return status, answer, engine


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tool_choice": "none"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"parallel_tool_calls": True}, "parallel_tool_calls"),
        ({"stream": True, "stream_options": {"include_obfuscation": True}}, None),
        ({"store": True}, "store"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"moderation": {"model": "omni-moderation-latest"}}, "moderation"),
        ({"prompt_cache_options": {"ttl": "30m"}}, "prompt_cache_options"),
        ({"prompt_cache_retention": "24h"}, "prompt_cache_retention"),
        ({"functions": [TOOLS[0]["function"]]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"verbosity": "low"}, "verbosity"),
        ({"safety_identifier": "x" * 65}, "safety_identifier"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"service_tier": "scale"}, "service_tier"),
    ],
)
def test_refused_by_name(fields, param):
    param = param or "stream_options.include_obfuscation"
    status, answer, engine = _post("/v1/chat/completions", {**CHAT, **fields})
    assert status == 400, answer
    assert_valid(answer, "ErrorResponse")
    assert answer["error"]["param"] == param
    assert param in answer["error"]["message"]
    assert engine.generated == []


def test_obfuscation_is_refused_on_completions_too():
    body = {"model": MODEL, "prompt": [1], "stream": True}
    status, answer, _ = _post(
        "/v1/completions", {**body, "stream_options": {"include_obfuscation": True}}
    )
    assert (status, answer["error"]["param"]) == (400, "stream_options.include_obfuscation")


@pytest.mark.parametrize(
    "fields",
    [
        {"tools": TOOLS, "tool_choice": "none", "parallel_tool_calls": False},
        {"tools": TOOLS, "tool_choice": "none", "parallel_tool_calls": True},
        {"stream": True, "stream_options": {"include_obfuscation": False}},
        {"user": "user-1234", "metadata": {"team": "a"}},
        {"safety_identifier": "safety-identifier-1234", "store": False},
        {"service_tier": "auto"},
        {"service_tier": "default", "priority": 0},
        {"modalities": ["text"], "prompt_cache_retention": "in_memory"},
    ],
)
def test_accepted_where_they_change_nothing(fields):
    status, answer, engine = _post("/v1/chat/completions", {**CHAT, **fields})
    assert status == 200, answer
    assert len(engine.generated) == 1
    assert engine.generated[0].sampling.priority == 0


def _answers(body: dict) -> list[dict]:
    """The reply body, or every chunk of a streamed reply."""

    async def post() -> list[dict]:
        async with in_process_client(FaultInjectingEngine(tokens_before_fault=1)) as client:
            response = await client.post("/v1/chat/completions", json=body)
            return parse_frames(response.content) if body["stream"] else [response.json()]

    return asyncio.run(post())


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("asked", "served"), [(None, None), ("auto", "default"), ("default", "default")]
)
def test_the_reply_names_the_tier_only_when_the_request_did(asked, served, stream):
    tier = {} if asked is None else {"service_tier": asked}
    schema = "CreateChatCompletionStreamResponse" if stream else "CreateChatCompletionResponse"
    for answer in _answers({**CHAT, **tier, "stream": stream}):
        assert answer.get("service_tier") == served
        assert_valid(answer, schema)


def test_store_true_points_to_the_responses_api():
    _, answer, _ = _post("/v1/chat/completions", {**CHAT, "store": True})
    assert "/v1/responses" in answer["error"]["message"]


def test_prompt_cache_key_reaches_every_engine_request():
    body = {**CHAT, "n": 2, "prompt_cache_key": "conversation-7"}
    status, answer, engine = _post("/v1/chat/completions", body)
    assert status == 200, answer
    assert [r.prompt_cache_key for r in engine.generated] == ["conversation-7"] * 2


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        ("/v1/chat/completions", {"priority": -1}, "priority"),
        ("/v1/chat/completions", {"service_tier": "priority"}, "service_tier"),
        ("/v1/chat/completions", {"service_tier": "flex"}, "service_tier"),
        ("/v1/completions", {"priority": 3}, "priority"),
    ],
)
def test_a_priority_under_fcfs_is_refused_naming_the_flag(path, fields, param):
    body = {**CHAT, **fields} if "chat" in path else {**COMPLETION, **fields}
    status, answer, engine = _post(path, body)
    assert (status, answer["error"]["param"]) == (400, param), answer
    assert "--scheduling-policy priority" in answer["error"]["message"]
    assert engine.generated == []


@pytest.mark.parametrize(
    ("path", "fields", "priority"),
    [
        ("/v1/chat/completions", {"priority": -3}, -3),
        ("/v1/chat/completions", {"service_tier": "priority"}, -1),
        ("/v1/chat/completions", {"service_tier": "fast"}, -1),
        ("/v1/chat/completions", {"service_tier": "flex"}, 1),
        ("/v1/chat/completions", {"service_tier": "flex", "priority": -2}, -2),
        ("/v1/completions", {"priority": 4}, 4),
    ],
)
def test_priority_and_service_tier_reach_the_engine_under_the_priority_policy(
    path, fields, priority
):
    body = {**CHAT, **fields} if "chat" in path else {**COMPLETION, **fields}
    status, answer, engine = _post(path, body, scheduling_policy="priority")
    assert status == 200, answer
    assert engine.generated[0].sampling.priority == priority


def test_an_engine_that_cannot_schedule_by_priority_refuses_it():
    engine = FaultInjectingEngine(
        tokens_before_fault=1, supported_sampling=ALL_SAMPLING - {"priority"}
    )

    async def post() -> dict:
        async with in_process_client(engine, scheduling_policy="priority") as client:
            response = await client.post("/v1/chat/completions", json={**CHAT, "priority": 1})
            return response.json()

    assert asyncio.run(post())["error"]["param"] == "priority"
    assert engine.generated == []


@pytest.mark.parametrize("policy", ["fcfs", "priority"])
def test_an_unoffered_tier_is_refused_beside_an_explicit_priority(policy):
    """Before, an explicit ``priority`` skipped the tier check: ``scale`` was served and
    echoed in the reply."""
    body = {**CHAT, "service_tier": "scale", "priority": 0}
    status, answer, engine = _post("/v1/chat/completions", body, scheduling_policy=policy)
    assert (status, answer["error"]["param"]) == (400, "service_tier"), answer
    assert engine.generated == []


@pytest.mark.parametrize(
    ("fields", "scheduled", "reported"),
    [
        ({"service_tier": "priority", "priority": 3}, 3, "flex"),
        ({"service_tier": "flex", "priority": -2}, -2, "priority"),
        ({"service_tier": "default", "priority": -1}, -1, "priority"),
        ({"service_tier": "priority", "priority": 0}, 0, "default"),
        ({"service_tier": "fast", "priority": -1}, -1, "fast"),
        ({"service_tier": "auto"}, 0, "default"),
    ],
)
def test_the_reply_reports_the_tier_the_request_was_scheduled_as(fields, scheduled, reported):
    """Before, ``{"priority": 3, "service_tier": "priority"}`` was scheduled after
    default requests while its reply said ``"priority"``."""
    status, answer, engine = _post(
        "/v1/chat/completions", {**CHAT, **fields}, scheduling_policy="priority"
    )
    assert status == 200, answer
    assert engine.generated[0].sampling.priority == scheduled
    assert answer["service_tier"] == reported


@pytest.mark.parametrize(("asked", "scheduled"), [(-(2**63), -100), (2**63 - 1, 100), (-7, -7)])
def test_a_priority_is_clamped_so_no_request_is_out_of_reach(asked, scheduled):
    status, answer, engine = _post(
        "/v1/chat/completions", {**CHAT, "priority": asked}, scheduling_policy="priority"
    )
    assert status == 200, answer
    assert engine.generated[0].sampling.priority == scheduled
