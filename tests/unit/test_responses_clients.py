"""``/v1/responses`` as its real clients use it (issue 25): Codex's request fields and
tools, ``item_reference`` inputs, chat's routing fields, and GET's replay parameters.
Through the real app with the FaultInjectingEngine (the frontend alone: its tokenizer is
UTF-8 bytes, so the rendered prompt can be read back).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fault_engines import FILLER, MODEL, FaultInjectingEngine, in_process_client
from spec import assert_valid
from test_responses_api import A, B, call, parse_events, prompt_of

#: What Codex 0.169.0 sends besides its input and function tools (recorded from the CLI).
CODEX_FIELDS = {
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "reasoning": {"summary": "auto"},
    "prompt_cache_key": "0197-session",
    "client_metadata": {"session_id": "0197-session", "turn_id": "0197-turn"},
    "tool_choice": "auto",
    "parallel_tool_calls": True,
}


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "responses.sqlite3")


FUNCTION = {
    "type": "function",
    "name": "exec_command",
    "description": "Runs a command.",
    "strict": False,
    "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}},
}
NAMESPACE = {
    "type": "namespace",
    "name": "multi_agent_v1",
    "description": "Tools for sub-agents.",
    "tools": [{**FUNCTION, "name": "close_agent"}],
}


def test_codexs_request_fields_and_namespace_tools_are_served(store):
    engine = FaultInjectingEngine(tokens_before_fault=2)
    body = {"model": MODEL, "input": "hi", "tools": [FUNCTION, NAMESPACE], **CODEX_FIELDS}

    async def script(c):
        return await c.post("/v1/responses", json=body, headers=A)

    answer = call(engine, store, script)
    assert answer.status_code == 200, answer.text
    final = parse_events(answer.text)[-1]["response"]
    assert_valid(final, "Response")
    assert final["reasoning"]["summary"] == "auto"
    assert engine.generated[0].prompt_cache_key == "0197-session"
    prompt = prompt_of(engine, 0)
    assert "exec_command" in prompt and "close_agent" in prompt  # the namespace's member


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [FUNCTION, {"type": "web_search"}]}, "tools[1].type"),
        ({"tools": [{**NAMESPACE, "tools": [{"type": "web_search"}]}]}, "tools[0].tools[0].type"),
        ({"include": ["reasoning.encrypted_content", "file_search_call.results"]}, "include"),
        ({"reasoning": {"summary": "detailed"}}, "reasoning.summary"),
        ({"stream_options": {"include_obfuscation": True}}, "stream_options.include_obfuscation"),
        ({"top_logprobs": 21}, "top_logprobs"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(store, fields, param):
    async def script(c):
        body = {"model": MODEL, "input": "hi", **fields}
        return await c.post("/v1/responses", json=body, headers=A)

    answer = call(FaultInjectingEngine(tokens_before_fault=1), store, script)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param


def test_chats_routing_fields_are_accepted_and_keep_chats_meaning(store):
    engine = FaultInjectingEngine(tokens_before_fault=1)
    body = {
        "model": MODEL,
        "input": "hi",
        "prompt_cache_key": "k1",
        "safety_identifier": "user-123",
        "service_tier": "default",
        "top_logprobs": 3,
        "stream": True,
        "stream_options": {"include_obfuscation": False},
    }

    async def script(c):
        served = await c.post("/v1/responses", json=body, headers=A)
        # Arrival-order scheduling (the default) cannot honour a priority tier: chat's 400.
        priority = await c.post(
            "/v1/responses", json={**body, "service_tier": "priority"}, headers=A
        )
        return served, priority

    served, priority = call(engine, store, script)
    assert served.status_code == 200, served.text
    assert engine.generated[0].prompt_cache_key == "k1"
    assert priority.status_code == 400, priority.text
    assert priority.json()["error"]["param"] == "service_tier"


def test_item_references_resolve_from_the_owners_store(store):
    engine = FaultInjectingEngine(tokens_before_fault=3)

    async def script(c):
        first = await c.post(
            "/v1/responses", json={"model": MODEL, "input": "first question"}, headers=A
        )
        made = first.json()
        references = [
            {"type": "item_reference", "id": made["output"][0]["id"]},
            {"role": "user", "content": "second question"},
        ]
        input_items = await c.get(f"/v1/responses/{made['id']}/input_items", headers=A)
        question = {"type": "item_reference", "id": input_items.json()["data"][0]["id"]}
        body = {"model": MODEL, "input": [question, *references]}
        mine = await c.post("/v1/responses", json=body, headers=A)
        theirs = await c.post("/v1/responses", json=body, headers=B)
        unknown = {"model": MODEL, "input": [{"type": "item_reference", "id": "msg_nope"}]}
        missing = await c.post("/v1/responses", json=unknown, headers=A)
        return made, mine, theirs, missing

    made, mine, theirs, missing = call(engine, store, script)
    assert mine.status_code == 200, mine.text
    prompt = prompt_of(engine, 1)
    assert (
        prompt.index("first question") < prompt.index(FILLER * 3) < prompt.index("second question")
    )
    for refused, param in ((theirs, "input[0].id"), (missing, "input[0].id")):
        assert refused.status_code == 404, refused.text
        assert_valid(refused.json(), "ErrorResponse")
        assert refused.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("stream=true", "stream"),
        ("stream=true&starting_after=3", "stream"),
        ("starting_after=3", "starting_after"),
    ],
)
def test_a_stored_responses_replay_is_refused_naming_stream(store, query, param):
    async def script(c):
        made = await c.post("/v1/responses", json={"model": MODEL, "input": "hi"}, headers=A)
        return await c.get(f"/v1/responses/{made.json()['id']}?{query}", headers=A)

    answer = call(FaultInjectingEngine(tokens_before_fault=1), store, script)
    assert answer.status_code == 400, answer.text
    assert_valid(answer.json(), "ErrorResponse")
    assert answer.json()["error"]["param"] == param


def test_an_overridden_max_tokens_caps_a_request_that_sets_no_limit(tmp_path):
    """Codex sends no ``max_output_tokens``: ``--override-generation-config
    '{"max_tokens": N}'`` is the only cap a gateway has (it was accepted and not applied)."""
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def run():
        config = {"response_store": "none", "generation_overrides": {"max_tokens": 24}}
        async with in_process_client(engine, **config) as c:
            unasked = await c.post("/v1/responses", json={"model": MODEL, "input": "hi"})
            asked = {"model": MODEL, "input": "hi", "max_output_tokens": 40}
            return unasked, await c.post("/v1/responses", json=asked)

    unasked, asked = asyncio.run(run())
    assert unasked.status_code == asked.status_code == 200, unasked.text
    assert [request.sampling.max_tokens for request in engine.generated] == [24, 40]
