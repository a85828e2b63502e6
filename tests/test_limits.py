"""Limits on one request's engine work, through the real server and engine."""

from __future__ import annotations

import time

from conftest import engine_view
from spec import assert_valid


def test_tiny_prompts_times_n_is_a_400_naming_the_limit(server, http):
    body = {"model": server.model, "prompt": [[1]] * 20_000, "n": 128}
    response = http.post("/v1/completions", json=body)
    assert response.status_code == 400
    error = response.json()
    assert_valid(error, "ErrorResponse")
    assert error["error"]["param"] == "prompt"
    assert "--max-prompts-per-request" in error["error"]["message"]
    assert engine_view(http)["engine_unfinished_requests"] == 0


def test_completions_default_to_16_tokens_as_openai(server, client):
    """ignore_eos: the model cannot stop early, so the default limit alone ends it."""
    reply = client.completions.create(
        model=server.model, prompt="Once upon a time", extra_body={"ignore_eos": True}
    )
    assert reply.usage.completion_tokens == 16
    assert reply.choices[0].finish_reason == "length"


def _admitted(http) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("openai_frontend_requests_admitted"):
            return float(line.split()[-1])
    raise AssertionError("no admission gauge (the session server has --max-concurrent-requests)")


def test_a_request_holds_one_admission_slot_per_sequence(server, http):
    body = {
        "model": server.model,
        "prompt": ["Once upon a time", "The sea"],
        "n": 3,
        "max_tokens": 200,
        "ignore_eos": True,
        "stream": True,
    }
    assert _admitted(http) == 0
    with http.stream("POST", "/v1/completions", json=body) as response:
        assert response.status_code == 200
        first = next(response.iter_lines())  # generating: the request holds its slots
        assert _admitted(http) == 6, f"first line of the stream: {first!r}"
    deadline = time.monotonic() + 60  # the server notices the disconnect on its own time
    while _admitted(http) != 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _admitted(http) == 0, "every slot is given back when the client leaves"
