"""A restart resumes an unfinished batch without rerunning a line that has a result.

Unit level: the real ``BatchRunner`` and the real SQLite ``BatchStore``, with
``FakeSender`` (a stand-in for the in-process app that records every line it is sent)
in place of the app, so "the process stopped mid-batch" is a runner closed while a line
is in flight, and "the next start" is a new runner over the same file.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

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
