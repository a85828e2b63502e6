"""Background responses (``background: true``) through the real app, measured alone
(FaultInjectingEngine; its ``hold`` keeps a generation running until the test lets it
go, so "still running" is a state the test sets, never a race against a clock).

Polls are bounded by a number of event-loop turns, not by wall-clock time: the fake
engine needs a handful of turns per token.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fault_engines import FILLER, MODEL, FaultInjectingEngine, in_process_client
from spec import assert_valid
from test_responses_api import KEY_A, KEY_B, A, B, parse_events

from engines.base import EngineError
from openai_frontend.responses.store import NewResponse, SQLiteResponseStore, owner_of

BACKGROUND = {"model": MODEL, "input": "hi", "background": True}
#: A hang guard, not a time budget: each wait ends on its condition, within a few loop
#: turns of the fake engine; but the store's writes run in worker threads, whose pace the
#: machine's load sets, so a count of loop turns was a race with them on a busy machine.
HANG_GUARD_S = 120.0


async def waiting() -> AsyncIterator[None]:
    """Yield until the hang guard runs out, yielding the loop (and a moment) in between."""
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        yield
        await asyncio.sleep(0.001)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "responses.sqlite3")


def call(engine: FaultInjectingEngine, store: str, script, **config) -> object:
    async def run():
        keys = {"api_keys": (KEY_A, KEY_B), **config}
        async with in_process_client(engine, response_store=store, **keys) as c:
            return await script(c)

    return asyncio.run(run())


async def poll(c: httpx.AsyncClient, rid: str, until: Callable[[dict], bool]) -> dict:
    """GET the response until ``until`` holds for it (each body checked on the way)."""
    async for _ in waiting():
        body = (await c.get(f"/v1/responses/{rid}", headers=A)).json()
        assert_valid(body, "Response")
        if until(body):
            return body
    raise AssertionError(f"never reached: last {body}")


def has_output(body: dict) -> bool:
    return bool(body["output"])


async def settled(engine: FaultInjectingEngine) -> None:
    """Wait until the engine holds no sequence."""
    async for _ in waiting():
        if engine.running == 0:
            return
    raise AssertionError(f"the engine still runs {engine.running} sequence(s)")


def test_a_background_response_answers_queued_then_completes_through_polling(store):
    engine = FaultInjectingEngine(tokens_before_fault=3)

    async def script(c):
        made = await c.post("/v1/responses", json=BACKGROUND, headers=A)
        done = await poll(c, made.json()["id"], lambda b: b["status"] == "completed")
        return made, done

    made, done = call(engine, store, script)
    assert made.status_code == 200, made.text
    assert_valid(made.json(), "Response")
    assert made.json()["status"] == "queued" and made.json()["output"] == []
    assert made.json()["background"] is True and made.json()["store"] is True
    assert done["background"] is True
    assert done["output"][0]["content"][0]["text"] == FILLER * 3
    assert done["usage"]["output_tokens"] == 3


def test_a_running_one_shows_its_progress_and_cancel_aborts_it(store):
    engine = FaultInjectingEngine(tokens_before_fault=50, hold=asyncio.Event())

    async def script(c):
        rid = (await c.post("/v1/responses", json=BACKGROUND, headers=A)).json()["id"]
        running = await poll(c, rid, has_output)
        held = engine.running
        cancelled = await c.post(f"/v1/responses/{rid}/cancel", headers=A)
        await settled(engine)
        again = await c.post(f"/v1/responses/{rid}/cancel", headers=A)
        fetched = await c.get(f"/v1/responses/{rid}", headers=A)
        theirs = await c.post(f"/v1/responses/{rid}/cancel", headers=B)
        unknown = await c.post("/v1/responses/resp_nope/cancel", headers=A)
        return running, held, cancelled, again, fetched, theirs, unknown

    running, held, cancelled, again, fetched, theirs, unknown = call(engine, store, script)
    assert running["status"] == "in_progress" and held == 1
    assert running["output"][0]["content"][0]["text"] == FILLER
    assert cancelled.status_code == 200, cancelled.text
    assert_valid(cancelled.json(), "Response")
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["output"][0]["content"][0]["text"] == FILLER
    assert engine.running == 0 and len(engine.generated) == 1  # aborted, not finished
    assert again.status_code == 200 and again.json() == cancelled.json()  # idempotent
    assert fetched.json() == cancelled.json()  # the store has it as cancelled
    for missing in (theirs, unknown):
        assert missing.status_code == 404, missing.text
        assert_valid(missing.json(), "ErrorResponse")


def test_cancelling_a_response_that_is_not_a_background_one_is_a_400(store):
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def script(c):
        made = await c.post("/v1/responses", json={"model": MODEL, "input": "hi"}, headers=A)
        return await c.post(f"/v1/responses/{made.json()['id']}/cancel", headers=A)

    refused = call(engine, store, script)
    assert refused.status_code == 400, refused.text
    assert_valid(refused.json(), "ErrorResponse")
    assert "not a background response" in refused.json()["error"]["message"]


def test_a_finished_background_response_cannot_be_cancelled(store):
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def script(c):
        rid = (await c.post("/v1/responses", json=BACKGROUND, headers=A)).json()["id"]
        await poll(c, rid, lambda b: b["status"] == "completed")
        return await c.post(f"/v1/responses/{rid}/cancel", headers=A)

    refused = call(engine, store, script)
    assert refused.status_code == 400, refused.text
    assert "completed" in refused.json()["error"]["message"]


def test_a_background_stream_is_numbered_and_resumes_after_any_event(store):
    engine = FaultInjectingEngine(tokens_before_fault=3)

    async def script(c):
        body = {**BACKGROUND, "stream": True}
        streamed = await c.post("/v1/responses", json=body, headers=A)
        rid = parse_events(streamed.text)[0]["response"]["id"]
        resumed = await c.get(f"/v1/responses/{rid}?stream=true&starting_after=3", headers=A)
        whole = await c.get(f"/v1/responses/{rid}?stream=true", headers=A)
        return streamed, resumed, whole

    streamed, resumed, whole = call(engine, store, script)
    events = parse_events(streamed.text)
    for event in events:
        assert_valid(event, "ResponseStreamEvent")
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert [event["type"] for event in events[:3]] == [
        "response.created",
        "response.queued",
        "response.in_progress",
    ]
    assert events[-1]["type"] == "response.completed"
    assert parse_events(resumed.text) == events[4:]  # replayed from the store
    assert parse_events(whole.text) == events


def test_a_resumed_stream_follows_a_running_response_to_its_end(store):
    engine = FaultInjectingEngine(tokens_before_fault=4, hold=asyncio.Event())

    async def script(c):
        body = {**BACKGROUND, "stream": True}
        first = asyncio.create_task(c.post("/v1/responses", json=body, headers=A))
        async for _ in waiting():  # the first token is out, the engine is held
            if engine.generated:
                break
        rid = "resp_" + engine.generated[0].request_id.removeprefix("resp-").rsplit("-", 1)[0]
        running = await poll(c, rid, has_output)
        query = f"/v1/responses/{rid}?stream=true&starting_after=2"
        resumed = asyncio.create_task(c.get(query, headers=A))
        engine.hold.set()
        return running, await first, await resumed

    running, first, resumed = call(engine, store, script)
    assert running["status"] == "in_progress"
    events = parse_events(first.text)
    assert events[-1]["type"] == "response.completed"
    assert parse_events(resumed.text) == events[3:]


def test_streaming_a_background_response_made_without_stream_is_refused(store):
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def script(c):
        rid = (await c.post("/v1/responses", json=BACKGROUND, headers=A)).json()["id"]
        live = await c.get(f"/v1/responses/{rid}?stream=true", headers=A)
        await poll(c, rid, lambda b: b["status"] == "completed")
        stored = await c.get(f"/v1/responses/{rid}?stream=true", headers=A)
        return live, stored

    for refused in call(engine, store, script):
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "stream"


def test_an_engine_failure_ends_it_failed_with_what_was_made(store):
    engine = FaultInjectingEngine(tokens_before_fault=2, raises=EngineError("boom", 500))

    async def script(c):
        rid = (await c.post("/v1/responses", json=BACKGROUND, headers=A)).json()["id"]
        return await poll(c, rid, lambda b: b["status"] not in ("queued", "in_progress"))

    failed = call(engine, store, script)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "server_error"
    assert failed["output"][0]["content"][0]["text"] == FILLER * 2


def test_a_continuation_of_a_running_response_is_refused(store):
    engine = FaultInjectingEngine(tokens_before_fault=5, hold=asyncio.Event())

    async def script(c):
        rid = (await c.post("/v1/responses", json=BACKGROUND, headers=A)).json()["id"]
        await poll(c, rid, has_output)
        body = {"model": MODEL, "input": "and?", "previous_response_id": rid}
        follow = await c.post("/v1/responses", json=body, headers=A)
        await c.post(f"/v1/responses/{rid}/cancel", headers=A)
        return follow

    follow = call(engine, store, script)
    assert follow.status_code == 400, follow.text
    assert follow.json()["error"]["param"] == "previous_response_id"


def test_deleting_a_running_response_stops_it(store):
    engine = FaultInjectingEngine(tokens_before_fault=50, hold=asyncio.Event())

    async def script(c):
        rid = (await c.post("/v1/responses", json=BACKGROUND, headers=A)).json()["id"]
        await poll(c, rid, has_output)
        deleted = await c.delete(f"/v1/responses/{rid}", headers=A)
        await settled(engine)
        return deleted, await c.get(f"/v1/responses/{rid}", headers=A)

    deleted, fetched = call(engine, store, script)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert engine.running == 0
    assert fetched.status_code == 404


def test_without_a_store_background_is_a_400_naming_it():
    engine = FaultInjectingEngine(tokens_before_fault=1)

    async def script(c):
        return await c.post("/v1/responses", json=BACKGROUND, headers=A)

    refused = call(engine, "none", script)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "background"
    assert engine.generated == []


def test_shutdown_marks_a_running_response_failed(store):
    """The server stops while a response is held mid-generation (no drain time): the
    job is cancelled, and the stored response says it failed, never in progress."""
    engine = FaultInjectingEngine(tokens_before_fault=50, hold=asyncio.Event())

    async def start(c):
        rid = (await c.post("/v1/responses", json=BACKGROUND, headers=A)).json()["id"]
        await poll(c, rid, has_output)
        return rid

    rid = call(engine, store, start, drain_timeout=0)
    assert engine.running == 0

    async def fetch(c):
        return (await c.get(f"/v1/responses/{rid}", headers=A)).json()

    after = call(FaultInjectingEngine(), store, fetch)
    assert_valid(after, "Response")
    assert after["status"] == "failed" and after["background"] is True
    assert "shut down" in after["error"]["message"]
    assert after["output"][0]["content"][0]["text"] == FILLER


def test_a_restart_marks_what_a_stopped_server_left_running_failed(tmp_path):
    """A row left ``in_progress`` (the process was killed: nothing marked it) is
    ``failed`` once a store opens the file again, as a new process does at start."""
    path = tmp_path / "responses.sqlite3"
    owner = owner_of(KEY_A)
    first = SQLiteResponseStore(path)
    first.open()
    base = {"created_at": 1_800_000_000, "output": [], "background": True, "error": None}
    for rid, status in (("resp_killed", "in_progress"), ("resp_done", "completed")):
        response = {**base, "id": rid, "status": status}
        asyncio.run(first.save(owner, NewResponse(rid, response, [])))
    first.close()

    second = SQLiteResponseStore(path, ttl_s=1e12)
    second.open()
    killed = asyncio.run(second.load(owner, "resp_killed")).response
    done = asyncio.run(second.load(owner, "resp_done")).response
    second.close()
    assert killed["status"] == "failed"
    assert killed["error"]["code"] == "server_error" and "restarted" in killed["error"]["message"]
    assert done["status"] == "completed" and done["error"] is None
    with sqlite3.connect(path) as db:  # the byte count follows the rewritten row
        size, text, items = db.execute(
            "SELECT size, response, input_items FROM responses WHERE id = 'resp_killed'"
        ).fetchone()
    assert size == len(text) + len(items)
    assert json.loads(text)["status"] == "failed"
