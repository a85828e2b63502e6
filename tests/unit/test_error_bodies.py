"""Error bodies and parameter paths."""

from __future__ import annotations

import asyncio
import json

from fault_engines import FaultInjectingEngine, in_process_client

from openai_frontend.errors import APIError, model_not_found, param_path


def test_param_path_matches_openai_style():
    assert param_path(("body", "messages", 0, "role")) == "messages.[0].role"
    assert param_path(("body", "top_p")) == "top_p"
    assert param_path(("body", "stop", "str")) == "stop"
    assert param_path(("body", "prompt", "list[int]", 0)) == "prompt"
    assert param_path(("body",)) is None


def test_model_not_found_shape():
    error = model_not_found("x")
    assert error.status == 404
    assert error.body() == {
        "error": {
            "message": "The model `x` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }


def test_default_types_by_status():
    assert APIError("m", status=429).type == "rate_limit_error"
    assert APIError("m", status=503).type == "service_unavailable"


def test_a_lone_surrogate_in_a_model_name_is_quoted_back_in_a_404():
    """orjson refuses lone surrogates; the name a client sent (legal JSON: "\\ud800")
    is quoted back escaped, not turned into a 500."""

    async def ask() -> tuple[int, dict]:
        async with in_process_client(FaultInjectingEngine()) as client:
            reply = await client.post(
                "/v1/chat/completions",
                content=b'{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}',
                headers={"content-type": "application/json"},
            )
            return reply.status_code, json.loads(reply.content)

    status, body = asyncio.run(ask())
    assert status == 404, body
    assert body["error"]["code"] == "model_not_found"
    assert "\ud800" in body["error"]["message"]
