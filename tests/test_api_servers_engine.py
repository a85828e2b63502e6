"""``--api-server-count 2`` on the in-process vLLM engine: one engine core, two API
processes (vLLM's own multi-API-server clients); chats through both succeed.

Which process takes a connection is the kernel's (SO_REUSEPORT), so fresh connections
are opened until each process has answered; only the hang guard bounds the loop.
"""

from __future__ import annotations

import signal

import httpx
import pytest
from test_api_servers import HANG_GUARD_S, _served_by, _until, two_api_processes

from openai_frontend.default_model import MODEL_NAME

pytestmark = pytest.mark.engine

BODY = {
    "model": MODEL_NAME,
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 4,
    "temperature": 0,
}


def test_two_api_processes_over_one_engine_core(tmp_path):
    with two_api_processes(tmp_path) as running:
        answers = []

        def each_answered() -> bool:
            with httpx.Client(base_url=running.base_url, timeout=120) as client:
                answer = client.post("/v1/chat/completions", json=BODY)
            if answer.status_code == 503:  # this process's client still connecting
                return False
            assert answer.status_code == 200, answer.text
            answers.append(answer.json()["choices"][0]["message"]["content"])
            return all(n > 0 for _, n in _served_by(running.base_url).values())

        _until(each_answered, "a chat answered by each API process")
        # One engine, greedy decoding: every process gives the same reply.
        assert answers[0] and len(set(answers)) == 1
        metrics = httpx.get(running.base_url + "/metrics", timeout=10).text
        assert "vllm:" in metrics  # the engine's own metrics, from both processes' files
        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=HANG_GUARD_S) == 0
