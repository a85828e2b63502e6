"""``/v1/responses`` through the real app, measured alone (FaultInjectingEngine: its text
is a filler token and its tokenizer UTF-8 bytes, so prompts can be read back).

Bodies and events are validated against OpenAI's ``Response`` and
``ResponseStreamEvent``; stored responses go to a SQLite file in a tmp dir.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from fault_engines import FILLER, MODEL, FaultInjectingEngine, in_process_client
from spec import assert_valid

from engines.base import EngineError

KEY_A, KEY_B = "key-a", "key-b"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}


def parse_events(text: str) -> list[dict]:
    """Each SSE block's event name must be its payload's ``type``."""
    events = []
    for block in filter(None, text.split("\n\n")):
        name, data = block.split("\n", 1)
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        events.append(event)
    return events


def call(engine: FaultInjectingEngine, store: str, script) -> object:
    """Run ``script(client)`` against a fresh app; returns what it returns."""

    async def run():
        async with in_process_client(engine, response_store=store, api_keys=(KEY_A, KEY_B)) as c:
            return await script(c)

    return asyncio.run(run())


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "responses.sqlite3")


def prompt_of(engine: FaultInjectingEngine, index: int) -> str:
    return bytes(engine.generated[index].prompt_token_ids).decode()


def test_a_body_is_a_valid_response_and_is_stored(store):
    engine = FaultInjectingEngine(tokens_before_fault=3)

    async def script(c):
        made = await c.post("/v1/responses", json={"model": MODEL, "input": "hi"}, headers=A)
        fetched = await c.get(f"/v1/responses/{made.json()['id']}", headers=A)
        return made, fetched

    made, fetched = call(engine, store, script)
    assert made.status_code == 200, made.text
    body = made.json()
    assert_valid(body, "Response")
    assert body["status"] == "completed" and body["store"] is True
    [message] = body["output"]
    assert message["content"][0]["text"] == FILLER * 3
    assert body["usage"]["output_tokens"] == 3
    assert body["usage"]["input_tokens"] == len(engine.generated[0].prompt_token_ids)
    assert fetched.status_code == 200 and fetched.json() == body


def test_stream_events_come_in_openais_order_numbered(store):
    engine = FaultInjectingEngine(tokens_before_fault=2)

    async def script(c):
        body = {"model": MODEL, "input": "hi", "stream": True}
        return await c.post("/v1/responses", json=body, headers=A)

    answer = call(engine, store, script)
    assert answer.status_code == 200
    assert "[DONE]" not in answer.text
    events = parse_events(answer.text)
    for event in events:
        assert_valid(event, "ResponseStreamEvent")
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert events[6]["text"] == FILLER * 2 == final["output"][0]["content"][0]["text"]


def test_the_token_limit_makes_an_incomplete_response(store):
    engine = FaultInjectingEngine(tokens_before_fault=16, finish_reason="length")

    async def script(c):
        body = {"model": MODEL, "input": "hi", "max_output_tokens": 16}
        plain = await c.post("/v1/responses", json=body, headers=A)
        streamed = await c.post("/v1/responses", json={**body, "stream": True}, headers=A)
        return plain, streamed

    plain, streamed = call(engine, store, script)
    assert_valid(plain.json(), "Response")
    assert plain.json()["status"] == "incomplete"
    assert plain.json()["incomplete_details"] == {"reason": "max_output_tokens"}
    assert plain.json()["output"][0]["status"] == "incomplete"
    last = parse_events(streamed.text)[-1]
    assert_valid(last, "ResponseStreamEvent")
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert engine.generated[0].sampling.max_tokens == 16


def test_a_failure_mid_stream_ends_with_response_failed(store):
    engine = FaultInjectingEngine(tokens_before_fault=2, raises=EngineError("boom"))

    async def script(c):
        body = {"model": MODEL, "input": "hi", "stream": True}
        return await c.post("/v1/responses", json=body, headers=A)

    events = parse_events(call(engine, store, script).text)
    for event in events:
        assert_valid(event, "ResponseStreamEvent")
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    failed = events[-1]
    assert failed["type"] == "response.failed"
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["code"] == "server_error"


def test_previous_response_id_continues_the_conversation(store):
    engine = FaultInjectingEngine(tokens_before_fault=3)

    async def script(c):
        first = await c.post(
            "/v1/responses", json={"model": MODEL, "input": "first question"}, headers=A
        )
        body = {"model": MODEL, "input": "second question", "stream": True}
        second = await c.post(
            "/v1/responses",
            json={**body, "previous_response_id": first.json()["id"]},
            headers=A,
        )
        second_id = parse_events(second.text)[-1]["response"]["id"]
        items = await c.get(f"/v1/responses/{second_id}/input_items?order=asc", headers=A)
        return first.json(), items.json()

    first, items = call(engine, store, script)
    prompt = prompt_of(engine, 1)
    assert (
        prompt.index("first question") < prompt.index(FILLER * 3) < prompt.index("second question")
    )
    assert_valid(items, "ResponseItemList")
    assert [item.get("role") for item in items["data"]] == ["user", "assistant", "user"]
    assert items["data"][1] == first["output"][0]


#: Each key in both header forms: the owner is the key, not the header.
A_FORMS = (A, {"x-api-key": KEY_A})
B_FORMS = (B, {"x-api-key": KEY_B})


@pytest.mark.parametrize(("a", "b"), [(a, b) for a in A_FORMS for b in B_FORMS])
def test_another_key_sees_a_404_everywhere(store, a, b):
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def script(c):
        made = await c.post("/v1/responses", json={"model": MODEL, "input": "hi"}, headers=a)
        rid = made.json()["id"]
        follow = {"model": MODEL, "input": "and?", "previous_response_id": rid}
        answers = [
            await c.get(f"/v1/responses/{rid}", headers=b),
            await c.get(f"/v1/responses/{rid}/input_items", headers=b),
            await c.post("/v1/responses", json=follow, headers=b),
            await c.delete(f"/v1/responses/{rid}", headers=b),
        ]
        still = [await c.get(f"/v1/responses/{rid}", headers=form) for form in A_FORMS]
        return answers, still

    answers, still = call(engine, store, script)
    for answer in answers:
        assert answer.status_code == 404, answer.text
        assert_valid(answer.json(), "ErrorResponse")
    assert answers[2].json()["error"]["param"] == "previous_response_id"
    assert [answer.status_code for answer in still] == [200, 200]  # B's delete did nothing
    with sqlite3.connect(store) as db:
        dumped = "\n".join(line for line in db.iterdump())
    assert KEY_A not in dumped and KEY_B not in dumped


def test_a_deleted_response_is_gone(store):
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def script(c):
        rid = (
            await c.post("/v1/responses", json={"model": MODEL, "input": "hi"}, headers=A)
        ).json()["id"]
        deleted = await c.delete(f"/v1/responses/{rid}", headers=A)
        return deleted, await c.get(f"/v1/responses/{rid}", headers=A), rid

    deleted, fetched, rid = call(engine, store, script)
    assert deleted.json() == {"id": rid, "object": "response", "deleted": True}
    assert fetched.status_code == 404


def test_stored_responses_survive_a_restart(store):
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def make(c):
        return (
            await c.post("/v1/responses", json={"model": MODEL, "input": "hi"}, headers=A)
        ).json()

    made = call(engine, store, make)

    async def fetch(c):
        return await c.get(f"/v1/responses/{made['id']}", headers=A)

    assert call(FaultInjectingEngine(), store, fetch).json() == made


def test_store_false_keeps_nothing(store):
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def script(c):
        body = {"model": MODEL, "input": "hi", "store": False}
        made = (await c.post("/v1/responses", json=body, headers=A)).json()
        return made, await c.get(f"/v1/responses/{made['id']}", headers=A)

    made, fetched = call(engine, store, script)
    assert made["store"] is False
    assert fetched.status_code == 404


def test_with_the_store_off_responses_still_work_and_say_so():
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def script(c):
        made = (
            await c.post("/v1/responses", json={"model": MODEL, "input": "hi"}, headers=A)
        ).json()
        body = {"model": MODEL, "input": "and?", "previous_response_id": made["id"]}
        return made, await c.post("/v1/responses", json=body, headers=A)

    made, follow = call(engine, "none", script)
    assert made["status"] == "completed" and made["store"] is False
    assert follow.status_code == 404
    assert "--response-store none" in follow.json()["error"]["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "function", "name": "bad name!"}]}, "tools[0].name"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"input": [{"role": "user", "content": "a"}, {"type": "bogus"}]}, "input[1].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        ({"input": [{"role": "robot", "content": "a"}]}, "input[0].role"),
        ({"input": []}, "input"),
        ({"background": True, "store": False}, "background"),
        ({"background": True, "input": "word " * 5000}, "input"),
        ({"background": True, "max_output_tokens": 5000}, "max_output_tokens"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"truncation": "auto"}, "truncation"),
        ({"reasoning": {"effort": "high"}}, "reasoning.effort"),
        ({"reasoning": {"summary": "concise"}}, "reasoning.summary"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"max_output_tokens": 8}, "max_output_tokens"),
        ({"max_output_tokens": 5000}, "max_output_tokens"),
        ({"top_k": -5}, "top_k"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"input": "word " * 5000}, "input"),
    ],
)
def test_bad_input_is_a_400_naming_the_path(store, fields, param):
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def script(c):
        return await c.post(
            "/v1/responses", json={"model": MODEL, "input": "hi", **fields}, headers=A
        )

    answer = call(engine, store, script)
    assert answer.status_code == 400, answer.text
    assert_valid(answer.json(), "ErrorResponse")
    assert answer.json()["error"]["param"] == param
    assert engine.generated == []


def test_unknown_previous_response_id_is_a_404(store):
    async def script(c):
        body = {"model": MODEL, "input": "hi", "previous_response_id": "resp_nope"}
        return await c.post("/v1/responses", json=body, headers=A)

    answer = call(FaultInjectingEngine(), store, script)
    assert answer.status_code == 404
    assert answer.json()["error"]["param"] == "previous_response_id"


def test_sampling_fields_reach_the_engine(store):
    engine = FaultInjectingEngine(tokens_before_fault=1)
    body = {
        "model": MODEL,
        "input": "hi",
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 7,
        "seed": 3,
        "repetition_penalty": 1.1,
        "max_output_tokens": 20,
    }

    async def script(c):
        return await c.post("/v1/responses", json=body, headers=A)

    answer = call(engine, store, script)
    assert answer.status_code == 200, answer.text
    sampling = engine.generated[0].sampling
    assert (sampling.temperature, sampling.top_p, sampling.top_k) == (0.5, 0.9, 7)
    assert (sampling.seed, sampling.repetition_penalty, sampling.max_tokens) == (3, 1.1, 20)
    assert answer.json()["temperature"] == 0.5


def test_a_locked_store_still_answers_and_says_it_did_not_store(store):
    """The fault here is the store's: another connection holds its write lock."""
    engine = FaultInjectingEngine(tokens_before_fault=2)

    async def script(c):
        holder = sqlite3.connect(store, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            body = {"model": MODEL, "input": "hi"}
            plain = await c.post("/v1/responses", json=body, headers=A)
            streamed = await c.post("/v1/responses", json={**body, "stream": True}, headers=A)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        final = parse_events(streamed.text)[-1]
        later = [
            await c.get(f"/v1/responses/{made['id']}", headers=A)
            for made in (plain.json(), final["response"])
        ]
        return plain, final, later

    plain, final, later = call(engine, store, script)
    assert plain.status_code == 200, plain.text
    assert final["type"] == "response.completed"
    for response in (plain.json(), final["response"]):
        assert_valid(response, "Response")
        assert response["store"] is False
        assert response["output"][0]["content"][0]["text"] == FILLER * 2
    assert [answer.status_code for answer in later] == [404, 404]
