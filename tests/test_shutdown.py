"""SIGTERM mid-stream: short streams drain, long ones end with an error event and [DONE].

This needs a server of its own (the signal ends it), started without LoRA.
"""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest
from servers import ours, wait_ready
from spec import assert_valid

from openai_frontend.default_model import MODEL_NAME, ensure_default_model

pytestmark = pytest.mark.engine


def _collect(base_url: str, max_tokens: int, out: dict, started: threading.Event) -> None:
    payload = {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "Write a long story about the sea."}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": True,
    }
    lines = []
    with (
        httpx.Client(base_url=base_url, timeout=120) as client,
        client.stream("POST", "/v1/chat/completions", json=payload) as response,
    ):
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) >= 4:
                started.set()
    out["frames"] = [line for line in lines if line]


def test_sigterm_drains_then_stops(tmp_path):
    running = ours(
        ensure_default_model(),
        tmp_path / "server.log",
        *("--served-model-name", MODEL_NAME, "--drain-timeout", "4"),
    )
    process, base_url = running.process, running.base_url
    try:
        wait_ready(running)
        short, long = {}, {}
        events = [threading.Event(), threading.Event()]
        threads = [
            threading.Thread(target=_collect, args=(base_url, 40, short, events[0])),
            threading.Thread(target=_collect, args=(base_url, 3000, long, events[1])),
        ]
        for thread in threads:
            thread.start()
        assert all(event.wait(60) for event in events), "both streams started"
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        for thread in threads:
            thread.join(60)
        assert process.wait(timeout=60) == 0
        assert time.monotonic() - signalled < 30
    finally:
        if process.poll() is None:
            process.kill()

    for result in (short, long):
        assert result["frames"][-1] == "data: [DONE]"
    short_chunks = [json.loads(f[6:]) for f in short["frames"][:-1]]
    assert short_chunks[-1]["choices"][0]["finish_reason"] == "length", "the short stream drained"
    last = json.loads(long["frames"][-2][6:])
    assert_valid(last, "ErrorResponse")
    assert last["error"]["code"] == "server_shutdown", "the long stream was stopped"
