"""Engine faults reach the client as errors, through the real app (FaultInjectingEngine).

A failed request is a 5xx in OpenAI's shape before the first byte, or an error event
and [DONE] once a stream has started; the server keeps serving after one.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fault_engines import MODEL, FaultInjectingEngine, in_process_client
from spec import assert_valid

from engines.base import EngineDead, EngineError

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
COMPLETION = {"model": MODEL, "prompt": [1, 2, 3], "max_tokens": 8}
ENDPOINTS = {"/v1/chat/completions": CHAT, "/v1/completions": COMPLETION}


def _post(engine: FaultInjectingEngine, path: str, body: dict) -> tuple[int, str]:
    async def post() -> tuple[int, str]:
        async with in_process_client(engine) as client:
            response = await client.post(path, json=body)
            return response.status_code, response.text

    return asyncio.run(post())


def _frames(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("fault", "status"),
    [(EngineError("generation failed", 500), 500), (EngineDead("core gone"), 503)],
    ids=["EngineError", "EngineDead"],
)
def test_a_failure_before_the_first_token_is_a_5xx(path, stream, fault, status):
    engine = FaultInjectingEngine(raises=fault)
    code, text = _post(engine, path, {**ENDPOINTS[path], "stream": stream})
    assert code == status, text
    assert_valid(json.loads(text), "ErrorResponse")


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_failure_mid_stream_is_an_error_event_then_done(path):
    engine = FaultInjectingEngine(tokens_before_fault=2, raises=EngineError("failed", 500))
    code, text = _post(engine, path, {**ENDPOINTS[path], "stream": True})
    assert code == 200
    frames = _frames(text)
    assert frames[-1] == "[DONE]"
    error = json.loads(frames[-2])
    assert_valid(error, "ErrorResponse")
    assert error["error"]["type"] == "server_error"


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("stream", [False, True])
def test_an_unknown_finish_reason_is_an_error_not_a_stop(path, stream):
    """A backend that let vLLM's "error" through would otherwise look like a success."""
    engine = FaultInjectingEngine(tokens_before_fault=1, finish_reason="error")
    code, text = _post(engine, path, {**ENDPOINTS[path], "stream": stream})
    if not stream:
        assert code == 500, text
        assert_valid(json.loads(text), "ErrorResponse")
        return
    frames = _frames(text)
    assert frames[-1] == "[DONE]"
    assert "error" in json.loads(frames[-2])
    assert '"finish_reason":"stop"' not in text


@pytest.mark.parametrize("path", ENDPOINTS)
def test_repetition_is_reported_as_vllm_reports_it(path):
    engine = FaultInjectingEngine(tokens_before_fault=1, finish_reason="repetition")
    code, text = _post(engine, path, ENDPOINTS[path])
    assert code == 200, text
    assert json.loads(text)["choices"][0]["finish_reason"] == "repetition"


def test_the_server_keeps_serving_after_a_failed_request():
    engine = FaultInjectingEngine(raises=EngineError("generation failed", 500))

    async def scenario() -> tuple[int, int, bool]:
        async with in_process_client(engine) as client:
            failed = await client.post("/v1/completions", json=COMPLETION)
            engine.raises = None
            served = await client.post("/v1/completions", json=COMPLETION)
            state = client._transport.app.state.server
            return failed.status_code, served.status_code, state.engine_failed

    assert asyncio.run(scenario()) == (500, 200, False)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_an_unexpected_exception_is_a_500_that_stays_in_the_app(path):
    """A bug (here: an exception no layer expects) is answered with a 500 in the API's
    shape, through every middleware (request id, access log), and the exception ends
    there: one that left the app made uvicorn log it twice and close the connection, so
    a client with bytes still in flight saw a reset instead of the answer."""
    engine = FaultInjectingEngine(raises=RuntimeError("a bug"))

    async def post() -> httpx.Response:
        async with in_process_client(engine, raise_app_exceptions=True) as client:
            return await client.post(path, json=ENDPOINTS[path])

    response = asyncio.run(post())
    assert response.status_code == 500, response.text
    assert_valid(response.json(), "ErrorResponse")
    assert response.json()["error"]["type"] == "server_error"
    assert response.headers["x-request-id"]


def test_an_unexpected_exception_on_the_messages_api_is_anthropics_500():
    engine = FaultInjectingEngine(raises=RuntimeError("a bug"))
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}

    async def post() -> httpx.Response:
        async with in_process_client(engine, raise_app_exceptions=True) as client:
            return await client.post("/v1/messages", json=body)

    response = asyncio.run(post())
    assert response.status_code == 500, response.text
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "api_error"
