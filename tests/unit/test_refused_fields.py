"""Chat fields the server cannot honour are refused by name, through the real app
(FaultInjectingEngine, no fault injected: only what reaches the engine is checked)."""

from __future__ import annotations

import asyncio

import pytest
from fault_engines import MODEL, FaultInjectingEngine, in_process_client
from spec import assert_valid

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def _post(path: str, body: dict) -> tuple[int, dict, FaultInjectingEngine]:
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def post() -> tuple[int, dict]:
        async with in_process_client(engine) as client:
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
    ],
)
def test_accepted_where_they_change_nothing(fields):
    status, answer, engine = _post("/v1/chat/completions", {**CHAT, **fields})
    assert status == 200, answer
    assert len(engine.generated) == 1
