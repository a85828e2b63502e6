"""Two gateways behind a real vllm-router (PyPI ``vllm-router``, vLLM's Rust router).

Worker A is the session server; worker B is this module's own gateway on the default
model, started only once A is ready (two CPU engines starting at once fail on 2 cores).
The router runs the README's command (``cache_aware``, health checks on
``/health/ready``) with a short health interval, so the ejection test waits for a few
intervals of the router's own clock, polled, and never for a fixed time.
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from conftest import USER_KEY, Server, _free_port
from servers import Running, all_stopped, default_model_server, launch
from sse import parse_frames
from test_access import _sample

ROUTER = shutil.which("vllm-router", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(ROUTER is None, reason="vllm-router is not installed")

#: The router's health checks: every HEALTH_INTERVAL_S, a worker is ejected after
#: HEALTH_FAILURES failed checks that each give up after HEALTH_TIMEOUT_S.
HEALTH_INTERVAL_S = 1
HEALTH_FAILURES = 2
HEALTH_TIMEOUT_S = 2
#: Polls of the router's worker list while waiting for a change of its own making: the
#: ejection takes HEALTH_FAILURES checks; ten times as many rounds is room for a loaded
#: machine, and the poll returns as soon as the router has acted.
EJECTION_ROUNDS = 10 * HEALTH_FAILURES
PROMPT_TOKENS = "openai_frontend_prompt_tokens_total"


@pytest.fixture(scope="module")
def worker_b(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A second gateway like the session server (same user key), started after it."""
    log_path = tmp_path_factory.mktemp("worker-b") / "server.log"
    with default_model_server(log_path, "--api-key", USER_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def router(
    server: Server, worker_b: Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    log_path = tmp_path_factory.mktemp("router") / "router.log"
    running = launch(
        [
            *(ROUTER, "--host", "127.0.0.1", "--port", "{port}"),
            *("--worker-urls", server.base_url, worker_b.base_url),
            *("--policy", "cache_aware", "--api-key", USER_KEY),
            *("--health-check-endpoint", "/health/ready"),
            *("--health-check-interval-secs", str(HEALTH_INTERVAL_S)),
            *("--health-failure-threshold", str(HEALTH_FAILURES)),
            *("--health-check-timeout-secs", str(HEALTH_TIMEOUT_S)),
            *("--worker-startup-check-interval", "1"),
            *("--prometheus-port", str(_free_port())),
        ],
        log_path,
    )
    with all_stopped(running):
        _wait_for(running, lambda workers: len(_healthy(workers)) == 2, rounds=60)
        yield running


def _workers(base_url: str) -> list[dict]:
    return httpx.get(base_url + "/workers", timeout=10).json()["workers"]


def _healthy(workers: list[dict]) -> set[str]:
    return {worker["url"] for worker in workers if worker["is_healthy"]}


def _wait_for(running: Running, done, rounds: int) -> None:
    """Poll the router's worker list, one health interval apart, until ``done`` holds."""
    for _ in range(rounds):
        if running.process.poll() is not None:
            raise RuntimeError(f"router exited:\n{running.log_path.read_text()[-4000:]}")
        try:
            if done(_workers(running.base_url)):
                return
        except httpx.HTTPError:
            pass
        time.sleep(HEALTH_INTERVAL_S)
    raise AssertionError(f"router never got there:\n{running.log_path.read_text()[-4000:]}")


def _client(router: Running) -> openai.OpenAI:
    base_url = router.base_url + "/v1"
    return openai.OpenAI(base_url=base_url, api_key=USER_KEY, max_retries=0, timeout=120)


def _prompt_tokens(base_url: str, model: str) -> float:
    return _sample(httpx.get(base_url + "/metrics").text, PROMPT_TOKENS, model=model)


#: What vllm-router 0.1.17 calls on a worker of its own accord (recorded at a capturing
#: worker), with vLLM 0.32's status for it: only ``/health`` exists there (vLLM's
#: ``/load`` and ``/version`` are not these; ``/get_*`` and ``/flush_cache`` are SGLang's).
WORKER_CALLS = [
    ("GET", "/health", 200),
    ("GET", "/get_load", 404),
    ("GET", "/get_server_info", 404),
    ("GET", "/get_model_info", 404),
    ("POST", "/flush_cache", 404),
]


@pytest.mark.parametrize(("method", "path", "status"), WORKER_CALLS)
def test_worker_calls_answer_as_vllm(server: Server, method: str, path: str, status: int) -> None:
    assert httpx.request(method, server.url(path), timeout=30).status_code == status


def test_every_api_passes_through(server: Server, router: Running) -> None:
    client = _client(router)
    question = [{"role": "user", "content": "Say hello."}]
    chat = client.chat.completions.create(model=server.model, messages=question, max_tokens=4)
    assert chat.choices[0].finish_reason in ("stop", "length")
    assert chat.usage.completion_tokens > 0
    completion = client.completions.create(model=server.model, prompt="Hello", max_tokens=4)
    assert completion.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model=server.model,
        messages=question,
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage.completion_tokens > 0
    assert any(chunk.choices and chunk.choices[0].delta.content for chunk in chunks)
    streamed = httpx.post(
        router.base_url + "/v1/completions",
        json={"model": server.model, "prompt": "Hello", "max_tokens": 4, "stream": True},
        headers={"Authorization": f"Bearer {USER_KEY}"},
        timeout=120,
    )
    assert streamed.status_code == 200, streamed.text
    assert parse_frames(streamed.content)[-1]["choices"][0]["finish_reason"] == "length"
    response = client.responses.create(model=server.model, input="Say hello.", max_output_tokens=16)
    assert response.status == "completed" or response.incomplete_details is not None
    assert response.usage.output_tokens > 0
    # The router forwards its own --api-key to /v1/messages (not the client's x-api-key).
    claude = anthropic.Anthropic(
        base_url=router.base_url, api_key="ignored", max_retries=0, timeout=120
    )
    message = claude.messages.create(model=server.model, max_tokens=4, messages=question)
    assert message.usage.output_tokens > 0


def test_cache_aware_keeps_a_conversation_on_one_gateway(
    server: Server, worker_b: Running, router: Running
) -> None:
    client = _client(router)
    nonce = uuid.uuid4().hex
    words = " ".join(f"item{i}" for i in range(200))
    messages = [{"role": "user", "content": f"{nonce} Count these: {words}"}]
    gateways = (server.base_url, worker_b.base_url)
    before = {url: _prompt_tokens(url, server.model) for url in gateways}
    sent = 0
    cached = []
    for turn in range(3):
        chat = client.chat.completions.create(
            model=server.model, messages=messages, max_tokens=4, temperature=0
        )
        sent += chat.usage.prompt_tokens
        cached.append(chat.usage.prompt_tokens_details.cached_tokens)
        messages += [
            {"role": "assistant", "content": chat.choices[0].message.content or "ok"},
            {"role": "user", "content": f"And again, turn {turn}."},
        ]
    grew = {url: _prompt_tokens(url, server.model) - before[url] for url in gateways}
    assert sorted(grew.values()) == [0, sent], grew  # every turn on one gateway
    assert all(tokens > 0 for tokens in cached[1:]), cached  # its repeats hit its cache


def test_a_killed_gateway_is_ejected_and_clients_see_no_error(
    server: Server, worker_b: Running, router: Running
) -> None:
    worker_b.stop()
    _wait_for(router, lambda workers: worker_b.base_url not in _healthy(workers), EJECTION_ROUNDS)
    assert server.base_url in _healthy(_workers(router.base_url))
    client = _client(router)
    for index in range(6):  # cache_aware's fresh prompts would have gone to either
        chat = client.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": f"{uuid.uuid4().hex} request {index}"}],
            max_tokens=2,
        )
        assert chat.usage.completion_tokens > 0
