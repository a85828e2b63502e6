"""``usage.prompt_tokens_details.cached_tokens`` through the real server: the engine's
prefix cache, reported on chat, completions and the final usage chunk of a stream, and
counted in /metrics.

Each test sends a prompt no other test sends (a fresh nonce first), so the first send
can only hit the cache on the chat template's shared opening, and the second must hit
it on most of the prompt.
"""

from __future__ import annotations

import uuid

from spec import assert_valid
from sse import parse_frames
from test_access import _sample

HIT_TOKENS = "openai_frontend_prefix_cache_hit_tokens_total"


def _long_text() -> str:
    """A prompt of several hundred tokens that starts with something never sent before."""
    words = " ".join(f"item{i}" for i in range(300))
    return f"{uuid.uuid4().hex} Count these: {words}"


def _cached(usage: dict) -> int:
    return usage["prompt_tokens_details"]["cached_tokens"]


def test_the_same_long_chat_prompt_twice_reports_cached_tokens(server, http):
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": _long_text()}],
        "max_tokens": 2,
        "temperature": 0,
    }
    before = _sample(http.get("/metrics").text, HIT_TOKENS, model=server.model)
    first = http.post("/v1/chat/completions", json=body).json()
    second = http.post("/v1/chat/completions", json=body).json()
    after = _sample(http.get("/metrics").text, HIT_TOKENS, model=server.model)
    for reply in (first, second):
        assert_valid(reply, "CreateChatCompletionResponse")
    usage = second["usage"]
    assert 0 < _cached(usage) <= usage["prompt_tokens"]
    assert _cached(first["usage"]) < _cached(usage)
    assert after - before == _cached(first["usage"]) + _cached(usage)


def test_completions_and_the_final_stream_chunk_report_cached_tokens(server, http):
    body = {"model": server.model, "prompt": _long_text(), "max_tokens": 2, "temperature": 0}
    first = http.post("/v1/completions", json=body).json()
    assert_valid(first, "CreateCompletionResponse")
    stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
    chunks = parse_frames(http.post("/v1/completions", json=stream).content)
    for chunk in chunks:
        assert_valid(chunk, "CompletionStreamChunk")
    usage = chunks[-1]["usage"]
    assert 0 < _cached(usage) <= usage["prompt_tokens"]
    assert _cached(first["usage"]) < _cached(usage)


def test_a_streamed_chat_reports_cached_tokens_in_its_usage_chunk(server, http):
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": _long_text()}],
        "max_tokens": 2,
    }
    http.post("/v1/chat/completions", json=body).raise_for_status()
    stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
    chunks = parse_frames(http.post("/v1/chat/completions", json=stream).content)
    for chunk in chunks:
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
    usage = chunks[-1]["usage"]
    assert 0 < _cached(usage) <= usage["prompt_tokens"]
