"""User keys, request ids, body limits, CORS and /metrics through the real server."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from conftest import ALLOWED_ORIGIN
from spec import assert_valid

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def anonymous(server):
    with httpx.Client(base_url=server.base_url, timeout=60) as session:
        yield session


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}]
)
@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"]
)
def test_user_key_required(server, anonymous, headers, path):
    response = anonymous.post(path, json={"model": server.model}, headers=headers)
    assert response.status_code == 401
    assert_valid(response.json(), "ErrorResponse")
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_models_needs_key_health_and_metrics_do_not(server, anonymous):
    assert anonymous.get("/v1/models").status_code == 401
    assert anonymous.get("/health").status_code == 200
    ready = anonymous.get("/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}, "no details"
    assert anonymous.get("/metrics").status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_docs_need_the_user_key(server, anonymous, path):
    assert anonymous.get(path).status_code == 401
    assert anonymous.get(path, headers=server.headers).status_code == 200


def test_request_id_is_returned_or_echoed(server, http):
    fresh = http.get("/v1/models")
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
    echoed = http.get("/v1/models", headers={"X-Request-Id": "my-trace-42"})
    assert echoed.headers["x-request-id"] == "my-trace-42"


def test_body_over_limit_is_413_before_parsing(server, http):
    big = b'{"model": "x", "prompt": "' + b"a" * (9 * 1024 * 1024) + b'"}'
    response = http.post(
        "/v1/completions", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert_valid(response.json(), "ErrorResponse")

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        yield b'{"model": "x", "prompt": "'
        for _ in range(10):
            yield b"a" * (1024 * 1024)
        yield b'"}'

    streamed = http.post(
        "/v1/completions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert_valid(streamed.json(), "ErrorResponse")


def test_cors_preflight_for_allowed_origin_only(server, anonymous):
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = anonymous.options(
        "/v1/chat/completions", headers={"Origin": ALLOWED_ORIGIN, **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    other = anonymous.options(
        "/v1/chat/completions", headers={"Origin": "http://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in other.headers


def _sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_tokens_and_latency(server, http):
    before = http.get("/metrics").text
    body = http.post(
        "/v1/chat/completions",
        json={"model": server.model, "messages": QUESTION, "max_tokens": 5, "temperature": 0},
    ).json()
    http.post(
        "/v1/chat/completions", json={"model": "pirate", "messages": QUESTION, "max_tokens": 5}
    )
    after = http.get("/metrics").text
    model = {"model": server.model}
    count = "openai_frontend_time_to_first_token_seconds_count"
    assert _sample(after, count, **model) == _sample(before, count, **model) + 1
    assert _sample(after, count, model="pirate") >= 1, "an adapter is counted under its own name"
    tokens = "openai_frontend_generation_tokens_total"
    assert (
        _sample(after, tokens, **model) - _sample(before, tokens, **model)
        == body["usage"]["completion_tokens"]
    )
    prompt = "openai_frontend_prompt_tokens_total"
    assert (
        _sample(after, prompt, **model) - _sample(before, prompt, **model)
        == body["usage"]["prompt_tokens"]
    )
    assert _sample(after, "openai_frontend_requests_running", **model) == 0
    length = "openai_frontend_request_success_total"
    assert _sample(after, length, finish_reason="length", **model) > _sample(
        before, length, finish_reason="length", **model
    )
    assert _sample(after, "openai_frontend_http_responses_total", **model, status="200") > 0
    assert "openai_frontend_inter_token_latency_seconds_bucket" in after
    assert "openai_frontend_e2e_request_latency_seconds_bucket" in after


def test_one_json_log_line_per_request_without_prompt_text(server, http):
    secret = "my secret prompt text"
    http.post(
        "/v1/chat/completions",
        json={
            "model": "pirate",
            "messages": [{"role": "user", "content": secret}],
            "max_tokens": 3,
        },
        headers={"X-Request-Id": "log-probe-1"},
    )
    time.sleep(0.5)
    log = server.log_path.read_text()
    lines = [json.loads(line) for line in log.splitlines() if '"log-probe-1"' in line]
    assert len(lines) == 1
    record = lines[0]
    assert record["status"] == 200
    assert record["model"] == "pirate" and record["adapter"] == "pirate"
    assert record["completion_tokens"] == 3 and record["prompt_tokens"] > 0
    assert record["ttft_ms"] > 0 and record["duration_ms"] >= record["ttft_ms"]
    assert record["path"] == "/v1/chat/completions"
    assert secret not in log, "no prompt text is logged without --log-prompts"
