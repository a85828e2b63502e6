"""The default model as `make serve` starts it: no MODEL, no --dtype.

One server of its own: what it answers while the engine loads, the start-up sanity
check in its log, and the one test of the default model's quality.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import httpx
import pytest
from servers import Running, launch, wait_ready
from spec import assert_valid

from engines.builds import is_cpu_build
from openai_frontend.default_model import MODEL_NAME, ensure_default_model

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@dataclass
class WhileLoading:
    models: httpx.Response
    chat: httpx.Response
    ready: httpx.Response


@dataclass
class DefaultServer:
    running: Running
    while_loading: WhileLoading


def _first_answers(base_url: str, deadline_s: float = 120) -> WhileLoading:
    """As soon as the server listens: its model list, a chat request and readiness."""
    give_up = time.monotonic() + deadline_s
    while time.monotonic() < give_up:
        try:
            httpx.get(base_url + "/health", timeout=2)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    chat = {"model": MODEL_NAME, "messages": QUESTION, "max_tokens": 4}
    return WhileLoading(
        models=httpx.get(base_url + "/v1/models", timeout=5),
        chat=httpx.post(base_url + "/v1/chat/completions", json=chat, timeout=5),
        ready=httpx.get(base_url + "/health/ready", timeout=5),
    )


@pytest.fixture(scope="module")
def default_server(tmp_path_factory) -> DefaultServer:
    ensure_default_model()
    log_path = tmp_path_factory.mktemp("default-server") / "server.log"
    running = launch(
        [sys.executable, "-m", "openai_frontend", "serve", "--port", "{port}"], log_path
    )
    try:
        loading = _first_answers(running.base_url)
        wait_ready(running)
        yield DefaultServer(running, loading)
    finally:
        running.stop()


def test_models_are_listed_while_the_engine_loads(default_server):
    seen = default_server.while_loading
    assert seen.ready.status_code == 503, "the engine should still be loading at first"
    assert seen.models.status_code == 200
    body = seen.models.json()
    assert_valid(body, "ListModelsResponse")
    assert [card["id"] for card in body["data"]] == [MODEL_NAME]


def test_generation_while_loading_is_503_with_retry_after(default_server):
    seen = default_server.while_loading
    assert seen.ready.status_code == 503, "the engine should still be loading at first"
    assert seen.chat.status_code == 503
    assert int(seen.chat.headers["retry-after"]) > 0
    body = seen.chat.json()
    assert_valid(body, "ErrorResponse")
    assert body["error"]["code"] == "model_loading"


def _log_line_with(running: Running, text: str, timeout_s: float = 60) -> str:
    """The first log line holding ``text``; the check runs just after readiness."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        for line in running.log_path.read_text().splitlines():
            if text in line:
                return line
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} in {running.log_path}")


@pytest.mark.skipif(not is_cpu_build(), reason="the float32 default is for the CPU build")
def test_startup_sanity_check_ran_in_float32(default_server):
    """The check ran on the served engine, in the default dtype; its verdict is the
    quality test's business."""
    running = default_server.running
    assert "(dtype float32)" in _log_line_with(running, "engine ready: SmolLM2-135M-Instruct")
    verdict = _log_line_with(running, "sanity check")
    assert "passed (dtype float32)" in verdict or "SANITY CHECK FAILED" in verdict


def test_default_model_quality_answers_paris(default_server):
    """The one test of what the default model knows, served as `make serve` serves it."""
    response = httpx.post(
        default_server.running.base_url + "/v1/chat/completions",
        json={"model": MODEL_NAME, "messages": QUESTION, "temperature": 0, "max_tokens": 20},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert "Paris" in response.json()["choices"][0]["message"]["content"]
