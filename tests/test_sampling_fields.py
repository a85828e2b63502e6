"""Every sampling field has an observable effect through the real engine, or a 400."""

from __future__ import annotations

import json

import jsonschema
import pytest
from derived import forcing_eos, inner_word
from spec import assert_valid
from sse import parse_frames

STORY = [{"role": "user", "content": "Write a long story about a dragon."}]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _chat(http, server, **fields) -> dict:
    response = http.post("/v1/chat/completions", json={"model": server.model, **fields})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_valid(body, "CreateChatCompletionResponse")
    return body


def _completion(http, server, **fields) -> dict:
    response = http.post("/v1/completions", json={"model": server.model, **fields})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_valid(body, "CreateCompletionResponse")
    return body


def _token_id(http, server, text: str) -> int:
    tokens = http.post(
        "/tokenize", json={"model": server.model, "prompt": text, "add_special_tokens": False}
    )
    ids = tokens.json()["tokens"]
    assert len(ids) == 1, f"{text!r} is not one token: {ids}"
    return ids[0]


def test_min_tokens_with_ignore_eos_gives_exact_length(server, http):
    eos = forcing_eos(server.model_path)  # EOS first, whatever this CPU's model would say
    short = _chat(http, server, messages=QUESTION, temperature=0, max_tokens=40, **eos)
    assert short["usage"]["completion_tokens"] < 40, "without them the answer ends on EOS"
    assert short["choices"][0]["finish_reason"] == "stop"
    body = _chat(
        http,
        server,
        messages=QUESTION,
        temperature=0,
        max_tokens=40,
        min_tokens=40,
        ignore_eos=True,
        **eos,
    )
    assert body["usage"]["completion_tokens"] == 40
    assert body["choices"][0]["finish_reason"] == "length"


def test_min_tokens_delays_eos(server, http):
    eos = forcing_eos(server.model_path)
    plain = _chat(http, server, messages=QUESTION, temperature=0, max_tokens=60, **eos)
    longer = _chat(
        http, server, messages=QUESTION, temperature=0, max_tokens=60, min_tokens=20, **eos
    )
    assert plain["usage"]["completion_tokens"] < 20 <= longer["usage"]["completion_tokens"]
    assert longer["usage"]["completion_tokens"] < 60, "EOS still ends it, just later"
    assert longer["choices"][0]["finish_reason"] == "stop"


def test_logit_bias_forces_a_token(server, http):
    forced = _token_id(http, server, " banana")
    body = _chat(
        http, server, messages=QUESTION, temperature=0, max_tokens=3, logit_bias={str(forced): 100}
    )
    assert body["choices"][0]["message"]["content"] == " banana" * 3


def test_stop_token_ids_end_generation(server, http):
    plain = _completion(
        http, server, prompt="The capital of France is", temperature=0, max_tokens=8
    )
    text = plain["choices"][0]["text"]
    ids = http.post(
        "/tokenize", json={"model": server.model, "prompt": text, "add_special_tokens": False}
    ).json()["tokens"]
    stop_id = ids[2]
    body = _completion(
        http,
        server,
        prompt="The capital of France is",
        temperature=0,
        max_tokens=8,
        stop_token_ids=[stop_id],
    )
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 3


def test_include_stop_str_in_output(server, http):
    request = {"messages": QUESTION, "temperature": 0, "max_tokens": 20}
    full = _chat(http, server, **request)["choices"][0]["message"]["content"]
    stop = inner_word(full)
    body = _chat(http, server, stop=[stop], include_stop_str_in_output=True, **request)
    assert body["choices"][0]["message"]["content"] == full[: full.index(stop) + len(stop)]
    assert body["choices"][0]["finish_reason"] == "stop"


def test_stop_string_never_leaks_into_any_chunk(server, http):
    full = _chat(http, server, messages=STORY, temperature=0, max_tokens=60)["choices"][0][
        "message"
    ]["content"]
    words = full.split()
    stop = " ".join(words[5:7])  # spans tokens: two words
    with http.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": server.model,
            "messages": STORY,
            "temperature": 0,
            "max_tokens": 60,
            "stop": [stop],
            "stream": True,
        },
    ) as response:
        chunks = parse_frames(response.read())
    pieces = [c["choices"][0]["delta"].get("content") or "" for c in chunks]
    assert "".join(pieces) == full[: full.index(stop)]
    assert not any(stop in piece for piece in pieces)
    assert not any(stop[:3] in piece for piece in pieces[-2:] if piece.endswith(stop[:3])), (
        "no partial stop at the end"
    )


def test_repetition_and_penalties_change_text(server, http):
    base = _chat(http, server, messages=STORY, temperature=0, max_tokens=60)["choices"][0][
        "message"
    ]["content"]
    for field, value in (
        ("repetition_penalty", 1.8),
        ("frequency_penalty", 2.0),
        ("presence_penalty", 2.0),
    ):
        changed = _chat(
            http, server, messages=STORY, temperature=0, max_tokens=60, **{field: value}
        )
        assert changed["choices"][0]["message"]["content"] != base, field


def test_top_k_one_is_greedy(server, http):
    greedy = _chat(http, server, messages=STORY, temperature=0, max_tokens=20)["choices"][0][
        "message"
    ]["content"]
    top1 = _chat(http, server, messages=STORY, temperature=1.5, top_k=1, max_tokens=20, seed=5)
    assert top1["choices"][0]["message"]["content"] == greedy


def test_min_p_near_one_is_greedy(server, http):
    greedy = _chat(http, server, messages=STORY, temperature=0, max_tokens=20)["choices"][0][
        "message"
    ]["content"]
    body = _chat(http, server, messages=STORY, temperature=1.5, min_p=0.999, max_tokens=20, seed=5)
    assert body["choices"][0]["message"]["content"] == greedy


def test_extra_body_fields_through_sdk(server, client):
    response = client.chat.completions.create(
        model=server.model,
        messages=QUESTION,
        max_tokens=30,
        extra_body={"min_tokens": 30, "ignore_eos": True, "top_k": 1},
    )
    assert response.usage.completion_tokens == 30


def test_chat_logprobs_shape(server, http):
    body = _chat(
        http, server, messages=QUESTION, temperature=0, max_tokens=5, logprobs=True, top_logprobs=3
    )
    content = body["choices"][0]["logprobs"]["content"]
    assert len(content) == 5
    for entry in content:
        assert len(entry["top_logprobs"]) == 3
        assert entry["logprob"] <= 0
        assert entry["top_logprobs"][0]["logprob"] >= entry["top_logprobs"][-1]["logprob"]
        assert entry["token"] == entry["top_logprobs"][0]["token"], "greedy picks the top token"
        assert bytes(entry["bytes"]).decode("utf-8", "replace") == entry["token"]
    text = "".join(entry["token"] for entry in content)
    assert text == body["choices"][0]["message"]["content"]


def test_chat_logprobs_stream_chunks_match_spec(server, http):
    with http.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": server.model,
            "messages": QUESTION,
            "max_tokens": 4,
            "logprobs": True,
            "top_logprobs": 2,
            "stream": True,
        },
    ) as response:
        chunks = parse_frames(response.read())
    with_logprobs = [c for c in chunks if c["choices"][0]["logprobs"]]
    assert sum(len(c["choices"][0]["logprobs"]["content"]) for c in with_logprobs) == 4
    for chunk in chunks:
        assert_valid(chunk, "CreateChatCompletionStreamResponse")


def test_completion_logprobs_shape(server, http):
    body = _completion(
        http, server, prompt="The capital of France is", temperature=0, max_tokens=4, logprobs=2
    )
    logprobs = body["choices"][0]["logprobs"]
    assert (
        len(logprobs["tokens"])
        == len(logprobs["token_logprobs"])
        == len(logprobs["top_logprobs"])
        == 4
    )
    assert all(len(top) <= 2 for top in logprobs["top_logprobs"])
    assert logprobs["text_offset"][0] == 0
    assert "".join(logprobs["tokens"]) == body["choices"][0]["text"]


def test_json_schema_output_validates(server, http):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    body = _chat(
        http,
        server,
        messages=[{"role": "user", "content": "Give me a city and its population as JSON."}],
        temperature=0,
        max_tokens=60,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema, "strict": True},
        },
    )
    content = json.loads(body["choices"][0]["message"]["content"])
    jsonschema.validate(content, schema)


def test_json_object_output_parses(server, http):
    body = _chat(
        http,
        server,
        messages=[
            {"role": "user", "content": "Give me a JSON object with a name and an age of a person."}
        ],
        temperature=0,
        max_tokens=300,
        response_format={"type": "json_object"},
    )
    assert body["choices"][0]["finish_reason"] == "stop"
    assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)


def test_uncompilable_schema_is_400(server, http):
    response = http.post(
        "/v1/chat/completions",
        json={
            "model": server.model,
            "messages": QUESTION,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "no-such-type"}},
            },
        },
    )
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"top_p": 2}, "top_p"),
        ({"top_k": -2}, "top_k"),
        ({"n": 0}, "n"),
        ({"temperature": -1}, "temperature"),
        ({"min_p": 1.5}, "min_p"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"min_tokens": -1}, "min_tokens"),
        ({"logit_bias": {"x": 1}}, "logit_bias"),
        ({"logit_bias": {"5": 500}}, "logit_bias"),
        ({"seed": 2**70}, "seed"),
        ({"stop_token_ids": [-1]}, "stop_token_ids"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
    ],
)
def test_invalid_values_name_param(server, http, fields, param):
    response = http.post(
        "/v1/chat/completions", json={"model": server.model, "messages": QUESTION, **fields}
    )
    assert response.status_code == 400, response.text
    error = response.json()
    assert_valid(error, "ErrorResponse")
    assert error["error"]["param"].startswith(param), error


def test_completion_invalid_values(server, http):
    for fields, param in (
        ({"logprobs": 21}, "logprobs"),
        ({"best_of": 1, "n": 2}, "best_of"),
        ({"echo": "yes"}, "echo"),
        ({"max_tokens": "5"}, "max_tokens"),
    ):
        response = http.post(
            "/v1/completions", json={"model": server.model, "prompt": "x", **fields}
        )
        assert response.status_code == 400, (fields, response.text)
        assert response.json()["error"]["param"] == param


def test_n_usage_sums_over_choices(server, http):
    body = _chat(
        http, server, messages=QUESTION, n=3, max_tokens=6, ignore_eos=True, seed=1, temperature=1
    )
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["usage"]["completion_tokens"] == 18
    assert len({c["message"]["content"] for c in body["choices"]}) > 1, "seeded choices differ"
    with http.stream(
        "POST",
        "/v1/completions",
        json={
            "model": server.model,
            "prompt": "Hi",
            "n": 3,
            "max_tokens": 5,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as response:
        chunks = parse_frames(response.read())
    assert chunks[-1]["usage"]["completion_tokens"] == 15
    assert sorted(
        c["choices"][0]["index"] for c in chunks[:-1] if c["choices"][0]["finish_reason"]
    ) == [0, 1, 2]
