"""Chat completions through the real server, with the official SDK and raw httpx."""

from __future__ import annotations

import asyncio

from derived import inner_word
from spec import assert_valid
from sse import parse_frames

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _stream_text(client, **kwargs) -> tuple[str, list]:
    chunks = list(client.chat.completions.create(stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_non_streaming_body_matches_spec(server, http):
    response = http.post(
        "/v1/chat/completions",
        json={"model": server.model, "messages": QUESTION, "temperature": 0, "max_tokens": 20},
    )
    assert response.status_code == 200
    body = response.json()
    assert_valid(body, "CreateChatCompletionResponse")
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_greedy_streamed_equals_non_streamed(server, client):
    kwargs = {"model": server.model, "messages": QUESTION, "temperature": 0, "max_tokens": 40}
    whole = client.chat.completions.create(**kwargs)
    streamed, _ = _stream_text(client, **kwargs)
    assert streamed == whole.choices[0].message.content
    assert streamed


def test_max_tokens_gives_length_and_exact_usage(server, client):
    response = client.chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_tokens=5,
        temperature=0,
    )
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 5


def test_max_completion_tokens_wins(server, client):
    response = client.chat.completions.create(
        model=server.model,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_completion_tokens=3,
        temperature=0,
    )
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 3


def test_stop_string_excluded(server, client):
    kwargs = {"model": server.model, "messages": QUESTION, "temperature": 0, "max_tokens": 20}
    full = client.chat.completions.create(**kwargs).choices[0].message.content
    stop = inner_word(full)
    stopped = client.chat.completions.create(stop=[stop], **kwargs)
    assert stopped.choices[0].message.content == full[: full.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"
    streamed, _ = _stream_text(client, stop=stop, **kwargs)
    assert streamed == full[: full.index(stop)]


def test_stream_framing_and_chunks_match_spec(server, http):
    with http.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": server.model,
            "messages": QUESTION,
            "max_tokens": 10,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = parse_frames(response.read())
    for chunk in chunks:
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
        assert chunk["object"] == "chat.completion.chunk"
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishes) == 1
    *body, last = chunks
    assert all(c["usage"] is None for c in body)
    assert last["choices"] == []
    generated = sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content"))
    assert last["usage"]["completion_tokens"] >= generated > 0
    assert (
        last["usage"]["total_tokens"]
        == last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]
    )


def test_stream_without_usage_has_no_usage_field(server, client):
    _, chunks = _stream_text(client, model=server.model, messages=QUESTION, max_tokens=4)
    assert all(c.usage is None for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks].count("length") == 1


def test_seed_reproducible(server, client):
    kwargs = {
        "model": server.model,
        "messages": [{"role": "user", "content": "Tell me a short fact about cats."}],
        "temperature": 1.0,
        "max_tokens": 24,
    }
    first = client.chat.completions.create(seed=1234, **kwargs).choices[0].message.content
    second = client.chat.completions.create(seed=1234, **kwargs).choices[0].message.content
    assert first == second
    others = {
        client.chat.completions.create(seed=s, **kwargs).choices[0].message.content
        for s in (1, 2, 3)
    }
    assert len(others | {first}) > 1


def test_n_choices_have_indices(server, http):
    response = http.post(
        "/v1/chat/completions",
        json={
            "model": server.model,
            "messages": QUESTION,
            "n": 3,
            "max_tokens": 6,
            "seed": 7,
            "temperature": 1,
        },
    )
    body = response.json()
    assert_valid(body, "CreateChatCompletionResponse")
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    with http.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": server.model, "messages": QUESTION, "n": 3, "max_tokens": 6, "stream": True},
    ) as streamed:
        chunks = parse_frames(streamed.read())
    finishes = [c["choices"][0]["index"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert sorted(finishes) == [0, 1, 2]


def test_async_sdk_streaming_and_not(server, async_client):
    async def run() -> tuple[str, str]:
        kwargs = {"model": server.model, "messages": QUESTION, "temperature": 0, "max_tokens": 16}
        whole = await async_client.chat.completions.create(**kwargs)
        parts = []
        async for chunk in await async_client.chat.completions.create(stream=True, **kwargs):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return whole.choices[0].message.content, "".join(parts)

    whole, streamed = asyncio.run(run())
    assert whole == streamed


def test_concurrent_requests_all_complete(server, async_client):
    async def one(i: int) -> str:
        response = await async_client.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": f"Count to {i}."}],
            max_tokens=8,
            temperature=0,
        )
        return response.choices[0].finish_reason

    async def run() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(8)))

    assert all(reason in ("stop", "length") for reason in asyncio.run(run()))


def test_multibyte_text_streams_whole_characters(server, client):
    kwargs = {
        "model": server.model,
        "messages": [
            {"role": "user", "content": "Say hello in Chinese, Japanese and with emoji 😀🎉."}
        ],
        "temperature": 0,
        "max_tokens": 60,
    }
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    streamed, chunks = _stream_text(client, **kwargs)
    assert streamed == whole
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert any(ord(ch) > 127 for ch in whole), "the prompt should draw non-ASCII text"
    if "\ufffd" not in whole:
        assert not any("\ufffd" in piece for piece in pieces)
