"""Background responses (``background: true``) against the real server and engine: the
OpenAI SDK's create, retrieve and cancel; a client that leaves a background stream does
not stop it, and a resumed stream carries on its numbering; a cancelled one leaves
nothing in the engine; a gateway killed mid-response serves it ``failed`` when it is
started again.

Every wait is budgeted from the speed the server shows first (a plain request of the
same size, timed), never from a fixed clock: the budget is several times that.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import httpx
import openai
from conftest import USER_KEY, Server
from disconnects import engine_unfinished, wait_for
from servers import all_stopped, ours, wait_ready
from spec import assert_valid
from test_responses import QUESTION, events_of

from openai_frontend.default_model import MODEL_NAME

UNFINISHED = ("queued", "in_progress")
#: How many times the measured time a poll may wait before the test fails.
SLACK = 10
LONG = {"max_output_tokens": 2000, "ignore_eos": True}
#: A text delta's data line (its ``type`` is the first key).
DELTA_DATA = 'data: {"type":"response.output_text.delta"'


def seconds_for(http: httpx.Client, model: str, tokens: int) -> float:
    """A plain (foreground) response of ``tokens`` tokens, timed."""
    body = {"model": model, "input": QUESTION, "max_output_tokens": tokens, "ignore_eos": True}
    started = time.monotonic()
    answer = http.post("/v1/responses", json=body)
    assert answer.status_code == 200, answer.text
    return time.monotonic() - started


def poll(fetch: Callable[[], dict], until: Callable[[dict], bool], budget_s: float) -> dict:
    """``fetch()`` again and again until ``until`` holds (each body checked on the way)."""
    deadline = time.monotonic() + budget_s
    while True:
        body = fetch()
        assert_valid(body, "Response")
        if until(body):
            return body
        assert time.monotonic() < deadline, f"not reached in {budget_s:.0f} s: {body}"
        time.sleep(0.05)


def test_the_sdk_polls_a_background_response_to_the_greedy_answer(
    server: Server, client: openai.OpenAI, http: httpx.Client
):
    settings = {"model": server.model, "input": QUESTION, "temperature": 0}
    settings["max_output_tokens"] = 24
    started = time.monotonic()
    foreground = client.responses.create(**settings)
    budget = SLACK * (time.monotonic() - started) + 5
    made = client.responses.create(**settings, background=True, store=True)
    assert made.status in UNFINISHED and made.background is True
    assert_valid(made.model_dump(mode="json", exclude_unset=True), "Response")

    def fetch() -> dict:
        return client.responses.retrieve(made.id).model_dump(mode="json", exclude_unset=True)

    done = poll(fetch, lambda body: body["status"] not in UNFINISHED, budget)
    assert done["status"] == foreground.status
    assert client.responses.retrieve(made.id).output_text == foreground.output_text


def test_a_cancelled_background_response_leaves_nothing_in_the_engine(
    server: Server, client: openai.OpenAI, http: httpx.Client
):
    assert wait_for(lambda: engine_unfinished(http) == 0)
    budget = SLACK * seconds_for(http, server.model, 16) + 5  # time to its first tokens
    made = client.responses.create(
        model=server.model, input=QUESTION, background=True, store=True, extra_body=LONG
    )

    def fetch() -> dict:
        return http.get(f"/v1/responses/{made.id}").json()

    running = poll(fetch, lambda body: body["status"] == "in_progress" and body["output"], budget)
    assert engine_unfinished(http) == 1
    cancelled = client.responses.cancel(made.id)
    assert cancelled.status == "cancelled"
    assert_valid(cancelled.model_dump(mode="json", exclude_unset=True), "Response")
    assert len(cancelled.output_text) >= len(running["output"][0]["content"][0]["text"])
    assert wait_for(lambda: engine_unfinished(http) == 0, timeout=10)
    assert client.responses.cancel(made.id).status == "cancelled"  # again: the same answer
    assert client.responses.retrieve(made.id).output_text == cancelled.output_text


def test_cancelling_a_foreground_response_is_a_400_that_says_so(
    server: Server, client: openai.OpenAI
):
    made = client.responses.create(model=server.model, input=QUESTION, max_output_tokens=16)
    try:
        client.responses.cancel(made.id)
    except openai.BadRequestError as error:
        assert "not a background response" in str(error)
    else:
        raise AssertionError("a foreground response was cancelled")


def test_leaving_a_background_stream_does_not_stop_it_and_it_resumes(
    server: Server, http: httpx.Client
):
    tokens = 48
    budget = SLACK * seconds_for(http, server.model, tokens) + 5
    body = {"model": server.model, "input": QUESTION, "background": True, "stream": True}
    body |= {"max_output_tokens": tokens, "ignore_eos": True}
    seen: list[str] = []
    with http.stream("POST", "/v1/responses", json=body) as streamed:
        lines = streamed.iter_lines()
        while sum(line.startswith(DELTA_DATA) for line in seen) < 2:
            seen.append(next(lines))
    # Hung up after two text deltas; the generation goes on for nobody's connection.
    first = events_of("\n".join(seen) + "\n")
    rid = first[0]["response"]["id"]
    done = poll(
        lambda: http.get(f"/v1/responses/{rid}").json(),
        lambda b: b["status"] not in UNFINISHED,
        budget,
    )
    assert done["status"] == "incomplete"  # ignore_eos: it ran to its token limit
    assert done["usage"]["output_tokens"] == tokens
    after = first[-1]["sequence_number"]
    resumed = http.get(f"/v1/responses/{rid}", params={"stream": "true", "starting_after": after})
    assert resumed.status_code == 200, resumed.text
    whole = http.get(f"/v1/responses/{rid}", params={"stream": "true"})
    events = events_of(whole.text)
    assert events[: len(first)] == first
    rest = [event for event in events if event["sequence_number"] > after]
    assert events_of(resumed.text, after) == rest
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["output"] == done["output"]


def test_a_gateway_killed_mid_response_serves_it_failed_when_started_again(
    server: Server, http: httpx.Client, tmp_path
):
    """The gateway (remote engine, in front of the session server) is killed while a
    background response runs: nothing could mark it then. Started again on the same
    SQLite file, it serves that response ``failed``, never ``in_progress`` forever."""
    budget = SLACK * seconds_for(http, server.model, 16) + 5
    store = tmp_path / "responses.sqlite3"
    flags = (
        *("--served-model-name", MODEL_NAME, "--engine", "remote"),
        *(f"--upstream={server.base_url}", "--upstream-api-key", USER_KEY),
        *("--api-key", USER_KEY, "--response-store", str(store)),
    )
    headers = {"Authorization": f"Bearer {USER_KEY}"}
    body = {"model": MODEL_NAME, "input": QUESTION, "background": True, **LONG}
    first = ours(server.model_path, tmp_path / "gateway-0.log", *flags)
    with (
        all_stopped(first),
        httpx.Client(base_url=first.base_url, timeout=120, headers=headers) as own,
    ):
        wait_ready(first)
        rid = own.post("/v1/responses", json=body).json()["id"]
        poll(
            lambda: own.get(f"/v1/responses/{rid}").json(),
            lambda b: b["status"] == "in_progress" and b["output"],
            budget,
        )
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
    again = ours(server.model_path, tmp_path / "gateway-1.log", *flags)
    with (
        all_stopped(again),
        httpx.Client(base_url=again.base_url, timeout=120, headers=headers) as own,
    ):
        wait_ready(again)
        after = own.get(f"/v1/responses/{rid}").json()
    assert_valid(after, "Response")
    assert after["status"] == "failed" and after["background"] is True
    assert "restarted" in after["error"]["message"]
    # The upstream request died with the gateway's connection.
    assert wait_for(lambda: engine_unfinished(http) == 0, timeout=10)
