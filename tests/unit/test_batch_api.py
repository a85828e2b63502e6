"""``/v1/files`` and ``/v1/batches`` through the real app (FaultInjectingEngine: its text
is a filler token, so these measure the gateway alone). Bodies are validated against
OpenAI's ``Batch``, ``OpenAIFile``, ``ListBatchesResponse`` and ``DeleteFileResponse``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fault_engines import MODEL, FaultInjectingEngine, in_process_client
from spec import assert_valid

from openai_frontend.admission import Admission
from openai_frontend.embedding_run import run_embedding
from openai_frontend.metrics import Metrics
from openai_frontend.priority import PRIORITY_LIMIT
from openai_frontend.state import BATCH_PRIORITY

KEY_A, KEY_B = "key-a", "key-b"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
CHAT = "/v1/chat/completions"
DONE = ("completed", "failed", "cancelled", "expired")


def chat_line(custom_id: str, text: str = "hi", url: str = CHAT) -> str:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 3}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


async def upload(c, lines: list[str], headers=A) -> dict:
    made = await c.post(
        "/v1/files",
        files={"file": ("input.jsonl", ("\n".join(lines) + "\n").encode())},
        data={"purpose": "batch"},
        headers=headers,
    )
    assert made.status_code == 200, made.text
    assert_valid(made.json(), "OpenAIFile")
    return made.json()


async def create(c, file_id: str, headers=A, **fields) -> dict:
    body = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h", **fields}
    made = await c.post("/v1/batches", json=body, headers=headers)
    assert made.status_code == 200, made.text
    assert_valid(made.json(), "Batch")
    return made.json()


async def until_done(c, batch_id: str, headers=A) -> dict:
    """Poll until the batch ends (the fake engine answers in microseconds)."""
    for _ in range(5000):
        batch = (await c.get(f"/v1/batches/{batch_id}", headers=headers)).json()
        if batch["status"] in DONE:
            assert_valid(batch, "Batch")
            return batch
        await asyncio.sleep(0.01)
    raise AssertionError(f"batch {batch_id} still {batch['status']}")


async def content(c, file_id: str, headers=A) -> list[dict]:
    got = await c.get(f"/v1/files/{file_id}/content", headers=headers)
    assert got.status_code == 200, got.text
    return [json.loads(line) for line in got.text.splitlines()]


def run(engine: FaultInjectingEngine, tmp_path: Path, script, **config) -> object:
    async def main():
        store = str(tmp_path / "store.sqlite3")
        keys = (KEY_A, KEY_B)
        async with in_process_client(engine, response_store=store, api_keys=keys, **config) as c:
            return await script(c)

    return asyncio.run(main())


def test_every_line_is_answered_with_its_custom_id_and_bad_lines_go_to_the_error_file(
    tmp_path,
):
    lines = [chat_line(f"ok-{i}") for i in range(6)]
    lines.insert(2, "{not json")
    lines.append(chat_line("wrong-url", url="/v1/completions"))
    lines.append(json.dumps({"custom_id": "no-messages", "method": "POST", "url": CHAT,
                             "body": {"model": MODEL}}))  # fmt: skip
    lines.append(chat_line("ok-0"))  # a duplicate custom_id

    async def script(c):
        file = await upload(c, lines)
        batch = await until_done(c, (await create(c, file["id"]))["id"])
        return (
            batch,
            await content(c, batch["output_file_id"]),
            await content(c, batch["error_file_id"]),
        )

    batch, output, errors = run(FaultInjectingEngine(tokens_before_fault=2), tmp_path, script)
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 10, "completed": 6, "failed": 4}
    assert [line["custom_id"] for line in output] == [f"ok-{i}" for i in range(6)]
    for line in output:
        assert line["error"] is None and line["response"]["status_code"] == 200
        assert line["id"] == line["response"]["request_id"]
        assert_valid(line["response"]["body"], "CreateChatCompletionResponse")
    by_id = {line["custom_id"]: line for line in errors}
    assert errors[0]["custom_id"] is None and errors[0]["error"]["code"] == "invalid_json_line"
    assert by_id["wrong-url"]["error"]["code"] == "invalid_url"
    refused = by_id["no-messages"]["response"]
    assert refused["status_code"] == 400 and refused["body"]["error"]["param"] == "messages"
    assert by_id["ok-0"]["error"]["code"] == "duplicate_custom_id"


def test_files_and_batches_belong_to_their_key(tmp_path):
    async def script(c):
        file = await upload(c, [chat_line("only")])
        batch = await until_done(c, (await create(c, file["id"]))["id"])
        seen_by_b = [
            await c.get(f"/v1/files/{file['id']}", headers=B),
            await c.get(f"/v1/files/{file['id']}/content", headers=B),
            await c.get(f"/v1/files/{batch['output_file_id']}/content", headers=B),
            await c.delete(f"/v1/files/{file['id']}", headers=B),
            await c.get(f"/v1/batches/{batch['id']}", headers=B),
            await c.post(f"/v1/batches/{batch['id']}/cancel", headers=B),
            await c.post(
                "/v1/batches",
                json={"input_file_id": file["id"], "endpoint": CHAT, "completion_window": "24h"},
                headers=B,
            ),
        ]
        lists_b = [(await c.get(path, headers=B)).json() for path in ("/v1/files", "/v1/batches")]
        lists_a = [(await c.get(path, headers=A)).json() for path in ("/v1/files", "/v1/batches")]
        deleted = await c.delete(f"/v1/files/{file['id']}", headers=A)
        after = await c.get(f"/v1/files/{file['id']}", headers=A)
        return seen_by_b, lists_b, lists_a, deleted, after

    seen_by_b, lists_b, lists_a, deleted, after = run(FaultInjectingEngine(), tmp_path, script)
    assert [response.status_code for response in seen_by_b] == [404] * 7
    assert all(page["data"] == [] for page in lists_b)
    assert_valid(lists_a[0], "ListFilesResponse")
    assert_valid(lists_a[1], "ListBatchesResponse")
    assert len(lists_a[0]["data"]) == 2 and len(lists_a[1]["data"]) == 1  # input + output
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert_valid(deleted.json(), "DeleteFileResponse")
    assert after.status_code == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [("endpoint", "/v1/images/generations"), ("completion_window", "1h")],
)
def test_an_unsupported_endpoint_or_window_is_a_400_naming_it(tmp_path, field, value):
    async def script(c):
        file = await upload(c, [chat_line("x")])
        body = {"input_file_id": file["id"], "endpoint": CHAT, "completion_window": "24h"}
        return await c.post("/v1/batches", json={**body, field: value}, headers=A)

    refused = run(FaultInjectingEngine(), tmp_path, script)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == field


def test_a_purpose_other_than_batch_is_a_400_naming_purpose(tmp_path):
    async def script(c):
        return await c.post(
            "/v1/files",
            files={"file": ("x.jsonl", b"{}\n")},
            data={"purpose": "fine-tune"},
            headers=A,
        )

    refused = run(FaultInjectingEngine(), tmp_path, script)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "purpose"


def test_an_upload_over_the_body_limit_is_a_413(tmp_path):
    async def script(c):
        big = chat_line("x", "y" * 5000)
        return await c.post(
            "/v1/files",
            files={"file": ("x.jsonl", big.encode())},
            data={"purpose": "batch"},
            headers=A,
        )

    refused = run(FaultInjectingEngine(), tmp_path, script, max_request_bytes=4096)
    assert refused.status_code == 413


def test_an_upload_past_the_stores_bytes_is_a_400_naming_file_and_keeps_the_others(tmp_path):
    first = ("\n".join(chat_line(f"a-{i}") for i in range(8)) + "\n").encode()

    async def script(c):
        kept = await upload(c, [chat_line(f"a-{i}") for i in range(8)])
        refused = await c.post(
            "/v1/files",
            files={"file": ("more.jsonl", first)},
            data={"purpose": "batch"},
            headers=B,
        )
        return kept, refused, await c.get(f"/v1/files/{kept['id']}", headers=A)

    kept, refused, still = run(
        FaultInjectingEngine(), tmp_path, script, responses_max_bytes=len(first) * 3 // 2
    )
    assert kept["bytes"] == len(first)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "file"
    assert_valid(refused.json(), "ErrorResponse")
    assert still.status_code == 200


def test_cancel_stops_the_lines_not_yet_run_and_keeps_the_answered_ones(tmp_path):
    engine = FaultInjectingEngine(tokens_before_fault=2)
    engine.hold = asyncio.Event()

    async def script(c):
        file = await upload(c, [chat_line(f"line-{i}") for i in range(20)])
        batch = await create(c, file["id"])
        while len(engine.generated) < 4:  # the runner's four slots are busy
            await asyncio.sleep(0.01)
        cancelling = (await c.post(f"/v1/batches/{batch['id']}/cancel", headers=A)).json()
        engine.hold.set()
        return cancelling, await until_done(c, batch["id"])

    cancelling, batch = run(engine, tmp_path, script)
    assert cancelling["status"] == "cancelling" and "cancelling_at" in cancelling
    assert batch["status"] == "cancelled" and "cancelled_at" in batch
    counts = batch["request_counts"]
    assert counts["total"] == 20 and counts["completed"] + counts["failed"] < 20
    assert len(engine.generated) == 4  # no line started after the cancel


def test_batch_lines_wait_behind_interactive_requests_in_admission(tmp_path):
    """One slot, held by the first batch line: the interactive request that arrives
    after three more batch lines queued is still served before them."""
    engine = FaultInjectingEngine(tokens_before_fault=1)
    engine.hold = asyncio.Event()

    async def script(c):
        file = await upload(c, [chat_line(f"line-{i}", f"batch {i}") for i in range(4)])
        await create(c, file["id"])
        admission = c._transport.app.state.server.admission
        while admission.waiting < 3:
            await asyncio.sleep(0.01)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "interactive"}]}
        chat = asyncio.create_task(c.post(CHAT, json={**body, "max_tokens": 1}, headers=A))
        while admission.waiting < 4:
            await asyncio.sleep(0.01)
        engine.hold.set()
        assert (await chat).status_code == 200

    run(engine, tmp_path, script, max_concurrent_requests=1)
    prompts = [bytes(request.prompt_token_ids).decode() for request in engine.generated]
    assert "batch 0" in prompts[0] and "interactive" in prompts[1]


def test_under_priority_scheduling_a_batch_line_reaches_the_engine_at_batch_priority(tmp_path):
    """The line asks for the soonest priority; the engine is told BATCH_PRIORITY, so it
    cannot pass interactive requests inside an engine that schedules by priority."""
    engine = FaultInjectingEngine()
    line = json.loads(chat_line("eager"))
    line["body"]["priority"] = -PRIORITY_LIMIT

    async def script(c):
        file = await upload(c, [json.dumps(line)])
        batch = await until_done(c, (await create(c, file["id"]))["id"])
        body = {**line["body"], "max_tokens": 1}
        interactive = await c.post(CHAT, json=body, headers=A)
        return batch, interactive

    batch, interactive = run(engine, tmp_path, script, scheduling_policy="priority")
    assert batch["request_counts"]["completed"] == 1 and interactive.status_code == 200
    priorities = [request.sampling.priority for request in engine.generated]
    assert priorities == [BATCH_PRIORITY, -PRIORITY_LIMIT]


class OrderNotingEmbedder:
    """A fake embedder: answers zeros, noting each request's first token in order."""

    def __init__(self) -> None:
        self.order: list[int] = []

    async def embed(self, request_id: str, inputs: list, dimensions: int | None) -> list:
        self.order.append(inputs[0][0])
        return [[0.0] for _ in inputs]


async def queued_up(admission: Admission, waiting: int) -> None:
    """Until ``waiting`` requests wait (a few loop turns); bounded, so it fails, not hangs."""
    for _ in range(1000):
        if admission.waiting >= waiting:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{admission.waiting} waiting, not {waiting}")


def test_a_batch_embeddings_line_waits_behind_an_interactive_one_in_admission():
    """The single slot is held; the batch line (its log fields marked by the runner) asks
    first, the interactive request second; the interactive one is embedded first."""
    admission = Admission(1, None)
    engine = OrderNotingEmbedder()
    state = SimpleNamespace(
        admission=admission, config=SimpleNamespace(request_timeout=None), metrics=Metrics()
    )
    target = SimpleNamespace(engine=engine, label="m")

    async def script() -> None:
        await admission.enter(1, 0, None)
        queued = [asyncio.create_task(run_embedding(state, target, [[1]], None, {"batch": True}))]
        await queued_up(admission, 1)
        queued.append(asyncio.create_task(run_embedding(state, target, [[2]], None, {})))
        await queued_up(admission, 2)
        admission.leave(1)
        await asyncio.gather(*queued)

    asyncio.run(script())
    assert engine.order == [2, 1]
