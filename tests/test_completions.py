"""Legacy completions through the real server: every prompt form, streaming and not."""

from __future__ import annotations

import json

import jsonschema
import pytest
from spec import assert_valid
from sse import parse_frames

PROMPT = "The capital of France is"


def test_string_prompt_matches_spec(server, http):
    response = http.post(
        "/v1/completions",
        json={"model": server.model, "prompt": PROMPT, "max_tokens": 5, "temperature": 0},
    )
    assert response.status_code == 200
    body = response.json()
    assert_valid(body, "CreateCompletionResponse")
    assert body["object"] == "text_completion"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5


@pytest.mark.parametrize("form", ["string", "strings", "ids", "id_lists"])
def test_prompt_forms(server, client, http, form):
    ids = http.post("/tokenize", json={"model": server.model, "prompt": PROMPT}).json()["tokens"]
    prompt = {"string": PROMPT, "strings": [PROMPT, PROMPT], "ids": ids, "id_lists": [ids, ids]}[
        form
    ]
    response = client.completions.create(
        model=server.model, prompt=prompt, max_tokens=4, temperature=0
    )
    expected = 2 if form in ("strings", "id_lists") else 1
    assert [c.index for c in response.choices] == list(range(expected))
    texts = {c.text for c in response.choices}
    assert len(texts) == 1, "the same prompt under greedy decoding gives the same text"
    assert response.usage.prompt_tokens == expected * len(ids)


def test_greedy_streamed_equals_non_streamed(server, client):
    kwargs = {"model": server.model, "prompt": PROMPT, "max_tokens": 16, "temperature": 0}
    whole = client.completions.create(**kwargs).choices[0].text
    streamed = "".join(c.choices[0].text for c in client.completions.create(stream=True, **kwargs))
    assert streamed == whole


def test_stream_chunks_match_spec(server, http):
    with http.stream(
        "POST",
        "/v1/completions",
        json={
            "model": server.model,
            "prompt": [PROMPT, "Once upon a time"],
            "max_tokens": 6,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0,
        },
    ) as response:
        chunks = parse_frames(response.read())
    for chunk in chunks[:-1]:
        assert_valid(chunk, "CompletionStreamChunk")
        assert chunk["usage"] is None
    assert_valid(chunks[-1], "CreateCompletionResponse")
    assert chunks[-1]["choices"] == []
    finished = [c["choices"][0]["index"] for c in chunks[:-1] if c["choices"][0]["finish_reason"]]
    assert sorted(finished) == [0, 1]
    assert chunks[-1]["usage"]["completion_tokens"] == 12


def test_echo_prepends_prompt(server, client):
    response = client.completions.create(
        model=server.model, prompt=PROMPT, max_tokens=3, echo=True, temperature=0
    )
    plain = client.completions.create(
        model=server.model, prompt=PROMPT, max_tokens=3, temperature=0
    )
    assert response.choices[0].text == PROMPT + plain.choices[0].text


def test_structured_outputs_constrain_a_completion(server, http):
    """vLLM's ``structured_outputs`` extension, which the remote engine sends upstream."""
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}},
        "required": ["name"],
        "additionalProperties": False,
    }
    response = http.post(
        "/v1/completions",
        json={
            "model": server.model,
            "prompt": "A person as JSON:",
            "max_tokens": 40,
            "temperature": 0,
            "structured_outputs": {"json": schema},
        },
    )
    assert response.status_code == 200, response.text
    assert_valid(response.json(), "CreateCompletionResponse")
    jsonschema.validate(json.loads(response.json()["choices"][0]["text"]), schema)


@pytest.mark.parametrize(
    ("structured", "param"),
    [({"regex": "a+"}, "structured_outputs.regex"), ({}, "structured_outputs")],
)
def test_structured_outputs_we_cannot_honour_are_refused(server, http, structured, param):
    response = http.post(
        "/v1/completions",
        json={"model": server.model, "prompt": "x", "structured_outputs": structured},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
