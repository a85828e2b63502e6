"""A restart resumes an unfinished batch without rerunning a line that has a result.

Unit level: the real ``BatchRunner`` and the real SQLite ``BatchStore``, with
``FakeSender`` (a stand-in for the in-process app that records every line it is sent)
in place of the app, so "the process stopped mid-batch" is a runner closed while a line
is in flight, and "the next start" is a new runner over the same file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from fault_engines import MODEL, FaultInjectingEngine, in_process_client

from engines.base import Delta, GenerateRequest
from openai_frontend.batch.runner import BatchRunner
from openai_frontend.batch.store import BatchStore, StoredFile
from openai_frontend.responses.store import SQLiteResponseStore

OWNER = "owner-hash"
CHAT = "/v1/chat/completions"


#: The stores' clock: every row here is fresh (a row older than the store's TTL
#: by this clock is gone, so a file stamped far in the past would be "deleted").
NOW = 2_000_000_001


class FakeSender:
    """Answers the first ``answer`` lines at once with a 200 echoing the body, then
    holds every later one forever (a process about to stop) and sets ``holding``."""

    def __init__(self, answer: int | None = None) -> None:
        self.answer = answer
        self.sent: list[str] = []
        self.holding = asyncio.Event()

    async def __call__(self, owner: str, url: str, body: dict, request: str):
        assert owner == OWNER and url == CHAT
        if self.answer is not None and len(self.sent) >= self.answer:
            self.holding.set()
            await asyncio.Event().wait()
        self.sent.append(body["messages"][0]["content"])
        return 200, {"echo": body["messages"][0]["content"]}, {}


async def new_batch(store: BatchStore, lines: int) -> str:
    text = "\n".join(
        json.dumps(
            {
                "custom_id": f"c{i}",
                "method": "POST",
                "url": CHAT,
                "body": {"messages": [{"role": "user", "content": f"line {i}"}]},
            }
        )
        for i in range(lines)
    ).encode()
    await store.save_file(OWNER, StoredFile("file-in", NOW, "in.jsonl", "batch", len(text)), text)
    batch = {
        "id": "batch_1",
        "object": "batch",
        "endpoint": CHAT,
        "input_file_id": "file-in",
        "completion_window": "24h",
        "status": "validating",
        "created_at": NOW,
        "expires_at": NOW + 86_400,
    }
    await store.create_batch(OWNER, batch)
    return batch["id"]


def test_a_restart_resumes_without_rerunning_answered_lines(tmp_path: Path):
    path = tmp_path / "store.sqlite3"

    async def first_process() -> list[str]:
        responses = SQLiteResponseStore(path, clock=lambda: NOW)
        responses.open()
        store = BatchStore(responses)
        batch_id = await new_batch(store, 10)
        sender = FakeSender(answer=4)
        runner = BatchRunner(store, sender, concurrency=1, clock=lambda: NOW)
        runner.start(OWNER, batch_id)
        # Concurrency 1: the fifth line is sent only once the fourth result is stored.
        # Should the run end instead (a failed batch), the wait ends too, and the
        # asserts below say why, rather than the test hanging.
        holding = asyncio.ensure_future(sender.holding.wait())
        ended = asyncio.ensure_future(runner.wait(batch_id))
        await asyncio.wait([holding, ended], return_when=asyncio.FIRST_COMPLETED)
        assert sender.holding.is_set(), await store.get_batch(OWNER, batch_id)
        ended.cancel()
        await runner.close()  # the process stops with line 4 in flight
        batch = await store.get_batch(OWNER, batch_id)
        assert batch["status"] == "in_progress"
        assert batch["request_counts"] == {"total": 10, "completed": 4, "failed": 0}
        responses.close()
        return sender.sent

    async def second_process() -> tuple[list[str], list[str], dict, list[str]]:
        responses = SQLiteResponseStore(path, clock=lambda: NOW + 1)
        responses.open()
        store = BatchStore(responses)
        sender = FakeSender()
        runner = BatchRunner(store, sender, concurrency=3, clock=lambda: NOW + 1)
        resumed = await runner.resume()
        for batch_id in resumed:
            await runner.wait(batch_id)
        batch = await store.get_batch(OWNER, "batch_1")
        output = await store.file_content(OWNER, batch["output_file_id"])
        responses.close()
        return resumed, sender.sent, batch, output.decode().splitlines()

    first = asyncio.run(first_process())
    resumed, second, batch, output = asyncio.run(second_process())
    assert first == [f"line {i}" for i in range(4)]
    assert resumed == ["batch_1"]
    assert sorted(second, key=lambda text: int(text.split()[1])) == [
        f"line {i}" for i in range(4, 10)
    ]
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 10, "completed": 10, "failed": 0}
    assert [json.loads(line)["custom_id"] for line in output] == [f"c{i}" for i in range(10)]


class HoldsAfterEngine(FaultInjectingEngine):
    """A fake engine (FaultInjectingEngine: filler text, UTF-8 bytes as tokens) that
    answers its first ``answer`` sequences and holds every later one after its first
    delta, until the process stops: the server about to restart mid-batch."""

    def __init__(self, answer: int) -> None:
        super().__init__(tokens_before_fault=1)
        self.answer = answer

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Delta]:
        if len(self.generated) >= self.answer:
            self.hold = asyncio.Event()  # never set
        async for delta in super().generate(request):
            yield delta


def chat_line(index: int) -> str:
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"batch {index}"}]}
    line = {"custom_id": f"c{index}", "method": "POST", "url": CHAT, "body": body}
    return json.dumps(line)


async def until(predicate: Callable[[], Awaitable[bool]]) -> None:
    """Until ``predicate`` holds (the fake engine answers at once; the store's thread
    takes a little); bounded in polls, so a run that never gets there fails, not hangs."""
    for _ in range(5000):
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


def test_a_restarted_app_resumes_its_batch_through_the_engine(tmp_path: Path):
    """The whole app twice over one store: the first stops with line 3 held in its
    engine; the second's start (its lifespan) resumes the batch, and its engine is sent
    lines 3..7 only, while the output file holds all eight in input order."""
    store = str(tmp_path / "store.sqlite3")
    first_engine, second_engine = HoldsAfterEngine(answer=3), FaultInjectingEngine()

    async def first_process() -> tuple[str, dict]:
        async with in_process_client(first_engine, response_store=store, batch_concurrency=1) as c:
            file = (
                await c.post(
                    "/v1/files",
                    files={"file": ("in.jsonl", "\n".join(map(chat_line, range(8))).encode())},
                    data={"purpose": "batch"},
                )
            ).json()
            body = {"input_file_id": file["id"], "endpoint": CHAT, "completion_window": "24h"}
            batch_id = (await c.post("/v1/batches", json=body)).json()["id"]

            async def fourth_line_held() -> bool:
                return len(first_engine.generated) == 4 and first_engine.running == 1

            await until(fourth_line_held)
            return batch_id, (await c.get(f"/v1/batches/{batch_id}")).json()

    async def second_process(batch_id: str) -> tuple[dict, list[dict]]:
        async with in_process_client(second_engine, response_store=store) as c:

            async def done() -> bool:
                batch = (await c.get(f"/v1/batches/{batch_id}")).json()
                return batch["status"] not in ("validating", "in_progress")

            await until(done)
            batch = (await c.get(f"/v1/batches/{batch_id}")).json()
            output = await c.get(f"/v1/files/{batch['output_file_id']}/content")
            return batch, [json.loads(line) for line in output.text.splitlines()]

    batch_id, stopped = asyncio.run(first_process())
    batch, output = asyncio.run(second_process(batch_id))
    assert stopped["status"] == "in_progress"
    assert stopped["request_counts"] == {"total": 8, "completed": 3, "failed": 0}
    prompts = [bytes(request.prompt_token_ids).decode() for request in second_engine.generated]
    assert [i for i in range(8) if any(f"batch {i}" in prompt for prompt in prompts)] == [
        3,
        4,
        5,
        6,
        7,
    ]
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 8, "completed": 8, "failed": 0}
    assert [line["custom_id"] for line in output] == [f"c{i}" for i in range(8)]
