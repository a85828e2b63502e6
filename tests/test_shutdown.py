"""SIGTERM mid-stream: short streams drain, long ones end with an error event and [DONE].

This needs a server of its own (the signal ends it), started without LoRA. "Short" and
"long" come from the speed the server shows first, not from fixed token counts: a
40-token stream did not finish within a 4 s drain on a slower CPU.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from servers import ours, wait_ready
from spec import assert_valid

from openai_frontend.default_model import MODEL_NAME, ensure_default_model

pytestmark = pytest.mark.engine


DRAIN_TIMEOUT_S = 4.0
#: The short stream is sized to need this share of the drain time at the measured speed.
SHORT_SHARE = 0.25
MESSAGES = [{"role": "user", "content": "Write a long story about the sea."}]


def _tokens_per_second(base_url: str, tokens: int = 32) -> float:
    """Each of two concurrent requests' decoding speed, the slower one's (the drain runs
    two streams at once); prefill and HTTP included, so it errs slow."""

    def timed(_: int) -> float:
        body = {"model": MODEL_NAME, "messages": MESSAGES, "max_tokens": tokens, "ignore_eos": True}
        started = time.monotonic()
        answer = httpx.post(base_url + "/v1/chat/completions", json=body, timeout=120)
        assert answer.json()["usage"]["completion_tokens"] == tokens
        return tokens / (time.monotonic() - started)

    with ThreadPoolExecutor(2) as pool:
        return min(pool.map(timed, range(2)))


def _collect(base_url: str, max_tokens: int | None, out: dict, started: threading.Event) -> None:
    """Stream ``max_tokens`` (None: the whole context left) into ``out["frames"]``."""
    payload = {"model": MODEL_NAME, "messages": MESSAGES, "ignore_eos": True, "stream": True}
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
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
        *("--served-model-name", MODEL_NAME, "--drain-timeout", str(DRAIN_TIMEOUT_S)),
    )
    process, base_url = running.process, running.base_url
    try:
        wait_ready(running)
        speed = _tokens_per_second(base_url)
        # Needs a quarter of the drain time; the long one fills the context, which takes
        # over 2,000 tokens/s to finish within the drain.
        short_tokens = max(8, int(speed * DRAIN_TIMEOUT_S * SHORT_SHARE))
        short, long = {}, {}
        events = [threading.Event(), threading.Event()]
        threads = [
            threading.Thread(target=_collect, args=(base_url, short_tokens, short, events[0])),
            threading.Thread(target=_collect, args=(base_url, None, long, events[1])),
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
    assert short_chunks[-1]["choices"][0]["finish_reason"] == "length", (
        f"the short stream ({short_tokens} tokens at {speed:.1f} tokens/s) drained"
    )
    last = json.loads(long["frames"][-2][6:])
    assert_valid(last, "ErrorResponse")
    assert last["error"]["code"] == "server_shutdown", "the long stream was stopped"
