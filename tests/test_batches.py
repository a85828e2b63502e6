"""The Batch API on the session server (the default model), through the real ``openai``
SDK: upload a JSONL file, create a batch, poll it, read the output and error files; and
a gateway killed mid-batch (remote engine in front of the session server, so no second
model loads) whose successor resumes the batch.

Lines are few and short (``max_tokens`` 4) so the model's work stays small; the poll
budget is derived from how long one such request takes here, never a fixed wall clock.
Nothing asserts what the model says: only that each line was answered, by whom, in what
shape (OpenAI's spec), and where it went. The unit tests cover the same restart with
a fake engine (tests/unit/test_batch_resume.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from conftest import USER_KEY, USER_KEY_2, Server
from servers import all_stopped, ours, wait_ready
from spec import assert_valid

from openai_frontend.default_model import MODEL_NAME

CHAT = "/v1/chat/completions"
FINISHED = ("completed", "failed", "cancelled", "expired")
#: How many times slower than one request, alone, a batch line may be here (a queue
#: behind other lines, a store write, the runner's turns) before the poll gives up.
SLACK = 30


def line(custom_id: str, body: dict[str, Any], url: str = CHAT) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def chat_body(text: str, max_tokens: int = 4) -> dict[str, Any]:
    return {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
    }


def upload(client: openai.OpenAI, lines: list[str]) -> str:
    """The input file's id (purpose ``batch``)."""
    made = client.files.create(file=("input.jsonl", "\n".join(lines).encode()), purpose="batch")
    assert made.purpose == "batch" and made.bytes > 0
    return made.id


def seconds_per_request(http: httpx.Client, url: str, body: dict[str, Any]) -> float:
    """One request like the batch's lines, alone: what the poll budget is scaled by."""
    started = time.monotonic()
    answer = http.post(url, json=body)
    assert answer.status_code == 200, answer.text
    return max(time.monotonic() - started, 0.05)


def until_finished(client: openai.OpenAI, batch_id: str, budget_s: float) -> Any:
    """Poll ``batch_id`` until it ends; past ``budget_s`` (measured, see SLACK) the test
    fails saying where the batch stood."""
    return until(client, batch_id, budget_s, lambda batch: batch.status in FINISHED)


def until(
    client: openai.OpenAI, batch_id: str, budget_s: float, done: Callable[[Any], bool]
) -> Any:
    """Poll ``batch_id`` until ``done`` says so of it, within ``budget_s``."""
    deadline = time.monotonic() + budget_s
    while True:
        batch = client.batches.retrieve(batch_id)
        if done(batch):
            return batch
        assert time.monotonic() < deadline, f"batch {batch.status}: {batch.request_counts}"
        time.sleep(min(0.2, budget_s / 50))


def jsonl(client: openai.OpenAI, file_id: str) -> list[dict[str, Any]]:
    return [json.loads(text) for text in client.files.content(file_id).text.splitlines()]


def test_every_line_is_answered_with_its_custom_id_and_bad_lines_go_to_the_error_file(
    client: openai.OpenAI, http: httpx.Client
):
    good = {f"ask-{i}": chat_body(f"Say a word about the number {i}.") for i in range(4)}
    lines = [line(custom_id, body) for custom_id, body in good.items()]
    lines.insert(1, line("no-messages", {"model": MODEL_NAME, "max_tokens": 4}))
    lines.insert(3, "{this is not json")
    per_request = seconds_per_request(http, CHAT, chat_body("Say a word."))

    made = client.batches.create(
        input_file_id=upload(client, lines),
        endpoint=CHAT,
        completion_window="24h",
        metadata={"suite": "batches"},
    )
    assert made.status == "validating" and made.metadata == {"suite": "batches"}
    batch = until_finished(client, made.id, SLACK * len(lines) * per_request)

    assert batch.status == "completed", batch.errors
    assert batch.request_counts.model_dump() == {"total": 6, "completed": 4, "failed": 2}
    assert_valid(http.get(f"/v1/batches/{batch.id}").json(), "Batch")
    assert_valid(http.get(f"/v1/files/{batch.output_file_id}").json(), "OpenAIFile")
    output, errors = jsonl(client, batch.output_file_id), jsonl(client, batch.error_file_id)
    assert [each["custom_id"] for each in output] == list(good)  # in input order
    for each in output:
        assert each["error"] is None and each["id"] == each["response"]["request_id"]
        assert each["response"]["status_code"] == 200
        answer = each["response"]["body"]
        assert_valid(answer, "CreateChatCompletionResponse")
        assert answer["usage"]["completion_tokens"] <= 4
    refused, unreadable = errors
    assert refused["custom_id"] == "no-messages" and refused["response"]["status_code"] == 400
    assert refused["response"]["body"]["error"]["param"] == "messages"
    assert unreadable["custom_id"] is None and unreadable["response"] is None
    assert unreadable["error"]["code"] == "invalid_json_line" and unreadable["error"]["line"] == 4


@pytest.mark.parametrize(
    ("endpoint", "body", "schema"),
    [
        (
            "/v1/completions",
            {"prompt": "Once upon a time", "max_tokens": 4},
            "CreateCompletionResponse",
        ),
        ("/v1/responses", {"input": "Say a word.", "max_output_tokens": 16}, "Response"),
    ],
)
def test_completions_and_responses_lines_run_through_their_endpoints(
    client: openai.OpenAI, http: httpx.Client, endpoint: str, body: dict, schema: str
):
    body = {"model": MODEL_NAME, **body}
    per_request = seconds_per_request(http, endpoint, body)
    lines = [line(f"{endpoint}-{i}", body, url=endpoint) for i in range(2)]
    made = client.batches.create(
        input_file_id=upload(client, lines), endpoint=endpoint, completion_window="24h"
    )
    batch = until_finished(client, made.id, SLACK * len(lines) * per_request)

    assert batch.status == "completed" and batch.error_file_id is None
    output = jsonl(client, batch.output_file_id)
    assert [each["custom_id"] for each in output] == [f"{endpoint}-{i}" for i in range(2)]
    for each in output:
        assert each["response"]["status_code"] == 200
        assert_valid(each["response"]["body"], schema)


def test_cancel_stops_the_batch_and_keeps_what_was_answered(
    client: openai.OpenAI, http: httpx.Client
):
    """Twelve lines, cancelled as soon as made: the lines not yet sent never run (the
    runner sends four at a time, each a model request, far slower than a cancel)."""
    custom_ids = [f"long-{i}" for i in range(12)]
    lines = [
        line(each, chat_body(f"Count to {i}.", max_tokens=16)) for i, each in enumerate(custom_ids)
    ]
    per_request = seconds_per_request(http, CHAT, chat_body("Count.", max_tokens=16))
    made = client.batches.create(
        input_file_id=upload(client, lines), endpoint=CHAT, completion_window="24h"
    )
    cancelling = client.batches.cancel(made.id)
    assert cancelling.status == "cancelling"
    batch = until_finished(client, made.id, SLACK * 4 * per_request)

    assert batch.status == "cancelled" and batch.cancelled_at is not None
    counts = batch.request_counts
    assert counts.completed + counts.failed < len(custom_ids)
    answered = jsonl(client, batch.output_file_id) if batch.output_file_id else []
    assert len(answered) == counts.completed
    assert {each["custom_id"] for each in answered} <= set(custom_ids)
    again = http.post(f"/v1/batches/{made.id}/cancel").json()
    assert again["status"] == "cancelled"  # a finished batch stays as it ended


def test_a_batch_belongs_to_the_key_that_made_it_whichever_header_carries_it(
    client: openai.OpenAI, server: Server
):
    """Made with ``Authorization: Bearer``; read again with the same key in
    ``x-api-key``; another key gets a 404 for the batch and its file (as for stored
    responses). The batch is cancelled at once: at most a line or two reach the model."""
    file_id = upload(client, [line("only", chat_body("Hi."))])
    made = client.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h")
    client.batches.cancel(made.id)

    def status(key: str, path: str) -> int:
        return httpx.get(server.url(path), headers={"x-api-key": key}, timeout=60).status_code

    assert status(USER_KEY, f"/v1/batches/{made.id}") == 200
    assert status(USER_KEY, f"/v1/files/{file_id}") == 200
    assert status(USER_KEY_2, f"/v1/batches/{made.id}") == 404
    assert status(USER_KEY_2, f"/v1/files/{file_id}/content") == 404
    other = openai.OpenAI(base_url=server.url("/v1"), api_key=USER_KEY_2, max_retries=0)
    assert made.id not in [batch.id for batch in other.batches.list()]


def test_bad_batch_requests_are_4xx_naming_the_parameter(client: openai.OpenAI):
    file_id = upload(client, [line("only", chat_body("Hi."))])
    with pytest.raises(openai.NotFoundError) as missing:
        client.batches.create(input_file_id="file-nope", endpoint=CHAT, completion_window="24h")
    with pytest.raises(openai.BadRequestError) as endpoint:
        client.batches.create(
            input_file_id=file_id, endpoint="/v1/moderations", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError) as purpose:
        client.files.create(file=("x.jsonl", b"{}\n"), purpose="fine-tune")
    assert missing.value.body["param"] == "input_file_id"
    assert endpoint.value.body["param"] == "endpoint"
    assert purpose.value.body["param"] == "purpose"
    client.files.delete(file_id)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file_id)


def answered_lines(store: Path, batch_id: str) -> dict[int, str]:
    """The results the store holds for ``batch_id``, by line (read with the gateway
    down: this is what the next start resumes from)."""
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT line, result FROM batch_lines WHERE batch_id = ?", (batch_id,)
        ).fetchall()
    return dict(rows)


def test_a_gateway_killed_mid_batch_resumes_it_without_rerunning_answered_lines(
    server: Server, tmp_path: Path
):
    """A real crash (SIGKILL) of a gateway with a batch in progress, one line at a time
    (``--batch-concurrency 1``); a new gateway on the same store file resumes it. The
    lines answered before the kill come out of the output file exactly as they were
    stored (same request id, same completion id and text): they were not run again."""
    store = tmp_path / "store.sqlite3"
    flags = (
        *("--served-model-name", MODEL_NAME, "--engine", "remote"),
        *(f"--upstream={server.base_url}", "--upstream-api-key", USER_KEY),
        *("--response-store", str(store), "--batch-concurrency", "1"),
    )
    custom_ids = [f"line-{i}" for i in range(10)]
    lines = [line(each, chat_body(f"Name a colour, {each}.", 8)) for each in custom_ids]

    first = ours(server.model_path, tmp_path / "first.log", *flags)
    with all_stopped(first):
        wait_ready(first)
        client = openai.OpenAI(base_url=f"{first.base_url}/v1", api_key="none", max_retries=0)
        with httpx.Client(base_url=first.base_url, timeout=120) as http:
            per_request = seconds_per_request(http, CHAT, chat_body("Name a colour.", 8))
        made = client.batches.create(
            input_file_id=upload(client, lines), endpoint=CHAT, completion_window="24h"
        )
        until(client, made.id, SLACK * 2 * per_request, lambda b: b.request_counts.completed >= 1)
        first.process.kill()
        first.process.wait()
    answered = answered_lines(store, made.id)
    assert 1 <= len(answered) < len(lines), "the kill was not mid-batch"

    second = ours(server.model_path, tmp_path / "second.log", *flags)
    with all_stopped(second):
        wait_ready(second)
        client = openai.OpenAI(base_url=f"{second.base_url}/v1", api_key="none", max_retries=0)
        batch = until_finished(client, made.id, SLACK * len(lines) * per_request)
        output = client.files.content(batch.output_file_id).text.splitlines()

    assert batch.status == "completed"
    assert batch.request_counts.model_dump() == {"total": 10, "completed": 10, "failed": 0}
    assert [json.loads(each)["custom_id"] for each in output] == custom_ids
    for number, result in answered.items():
        assert output[number] == result
