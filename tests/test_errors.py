"""Bad input gets a 4xx in OpenAI's error shape, naming the parameter; never a 500."""

from __future__ import annotations

import openai
import pytest
from spec import assert_valid

MESSAGES = [{"role": "user", "content": "hi"}]


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert_valid(body, "ErrorResponse")
    return body["error"]


def test_unknown_model_is_404(server, http):
    error = _error(
        http.post("/v1/chat/completions", json={"model": "nope", "messages": MESSAGES}), 404
    )
    assert error["code"] == "model_not_found"
    error = _error(http.post("/v1/completions", json={"model": "nope", "prompt": "x"}), 404)
    assert error["code"] == "model_not_found"
    _error(http.get("/v1/models/nope"), 404)


def test_unknown_model_through_sdk(server, client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope", messages=MESSAGES)
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("temperature", -1, "temperature"),
        ("temperature", 3, "temperature"),
        ("top_p", 2, "top_p"),
        ("n", 0, "n"),
        ("max_tokens", 0, "max_tokens"),
        ("top_k", -2, "top_k"),
        ("presence_penalty", 5, "presence_penalty"),
        ("stop", 5, "stop"),
        ("temperature", "hot", "temperature"),
        ("stream_options", {"include_usage": True}, "stream_options"),
        ("top_logprobs", 2, "top_logprobs"),
        ("no_such_field", 1, "no_such_field"),
    ],
)
def test_bad_chat_parameter_names_param(server, http, field, value, param):
    payload = {"model": server.model, "messages": MESSAGES, field: value}
    error = _error(http.post("/v1/chat/completions", json=payload), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"


def test_bad_message_role_names_path(server, http):
    payload = {"model": server.model, "messages": [{"role": "wizard", "content": "hi"}]}
    error = _error(http.post("/v1/chat/completions", json=payload), 400)
    assert error["param"] == "messages.[0].role"


def test_missing_messages(server, http):
    error = _error(http.post("/v1/chat/completions", json={"model": server.model}), 400)
    assert error["param"] == "messages"


def test_not_json_body(server, http):
    response = http.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    _error(response, 400)


def test_context_overflow_names_both_numbers(server, http):
    payload = {"model": server.model, "messages": MESSAGES, "max_tokens": 10_000}
    error = _error(http.post("/v1/chat/completions", json=payload), 400)
    assert error["param"] == "max_tokens"
    assert "8192" in error["message"] and "10000" in error["message"]


def test_completion_prompt_too_long(server, http):
    payload = {"model": server.model, "prompt": [1] * 9000, "max_tokens": 1}
    error = _error(http.post("/v1/completions", json=payload), 400)
    assert "8192" in error["message"]


def test_empty_prompt(server, http):
    error = _error(http.post("/v1/completions", json={"model": server.model, "prompt": ""}), 400)
    assert error["param"] == "prompt"


def test_out_of_vocabulary_token_is_400(server, http):
    payload = {"model": server.model, "prompt": [10**9], "max_tokens": 1}
    _error(http.post("/v1/completions", json=payload), 400)


def test_unsupported_field_is_rejected_not_dropped(server, http):
    payload = {"model": server.model, "prompt": "x", "suffix": "y"}
    error = _error(http.post("/v1/completions", json=payload), 400)
    assert error["param"] == "suffix"


def test_unknown_route_is_openai_shaped(server, http):
    _error(http.get("/v1/nothing-here"), 404)
