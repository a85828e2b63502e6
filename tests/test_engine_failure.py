"""The engine process dies mid-stream: the client gets an error event and [DONE], the
server reports not-ready, then exits non-zero (the documented policy). A server of its
own, since this one is meant to die."""

from __future__ import annotations

import json
import signal
import subprocess
import threading

import httpx
import psutil
import pytest
from servers import ours, wait_ready
from spec import assert_valid

from openai_frontend.default_model import MODEL_NAME, ensure_default_model

pytestmark = pytest.mark.engine


def _engine_core(server: subprocess.Popen) -> psutil.Process:
    for child in psutil.Process(server.pid).children(recursive=True):
        if "EngineCore" in " ".join(child.cmdline()) or "EngineCore" in child.name():
            return child
    raise AssertionError("no EngineCore process under the server")


def test_engine_death_mid_stream(tmp_path):
    running = ours(
        ensure_default_model(), tmp_path / "server.log", "--served-model-name", MODEL_NAME
    )
    process, base_url = running.process, running.base_url
    try:
        wait_ready(running)
        frames: list[str] = []
        started = threading.Event()

        def stream() -> None:
            payload = {
                "model": MODEL_NAME,
                "messages": [{"role": "user", "content": "Write a long story."}],
                "max_tokens": 3000,
                "ignore_eos": True,
                "stream": True,
            }
            with (
                httpx.Client(base_url=base_url, timeout=60) as client,
                client.stream("POST", "/v1/chat/completions", json=payload) as response,
            ):
                for line in response.iter_lines():
                    if line:
                        frames.append(line)
                    if len(frames) >= 4:
                        started.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert started.wait(60)
        _engine_core(process).send_signal(signal.SIGKILL)
        reader.join(60)
        assert not reader.is_alive(), "the client is never left hanging"
        health = httpx.get(f"{base_url}/health/ready", timeout=5)
        assert health.status_code == 503
        assert process.wait(timeout=60) == 1
    finally:
        if process.poll() is None:
            process.kill()
    assert frames[-1] == "data: [DONE]"
    error = json.loads(frames[-2][len("data: ") :])
    assert_valid(error, "ErrorResponse")
    assert error["error"]["type"] == "service_unavailable"
