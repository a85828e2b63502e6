"""Anthropic's Messages API end to end: the ``anthropic`` SDK against real servers.

The default model (the session ``server``) answers plain messages; the ``weather`` and
``thinker`` demo adapters (tests/parser_fixtures.py) answer with tool calls and with
reasoning. No test asserts what a model knows: every expected text, call and count is
taken from the same server's chat endpoint (the same pipeline, another dialect) or from
an earlier reply of the same request.
"""

from __future__ import annotations

import json
import uuid

import anthropic
import httpx
import pytest
from demo_conversations import WEATHER_TOOLS
from disconnects import assert_a_disconnect_mid_stream_aborts
from tool_replies import ask

QUESTION = [{"role": "user", "content": "Name three colours and say why you like them."}]
SYSTEM = "You are a friendly assistant."
WEATHER = WEATHER_TOOLS[0]["function"]
WEATHER_TOOL = {
    "name": WEATHER["name"],
    "description": WEATHER["description"],
    "input_schema": WEATHER["parameters"],
}
THINKING = {"type": "enabled", "budget_tokens": 1024}
#: The SDK (2.x) has no ``temperature`` argument; the API takes it, sent as extra body.
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def claude(server) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.base_url, api_key=server.api_key, max_retries=0, timeout=120
    )


@pytest.fixture(scope="module")
def parser_claude(parser_server) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=parser_server.base_url, api_key="unused", max_retries=0, timeout=300
    )


def text_of(message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def blocks_of(message) -> list[dict]:
    """The content blocks as data (a streamed final message types its text blocks as
    ParsedTextBlock, with an empty ``parsed_output``)."""
    return [block.model_dump(exclude={"parsed_output"}) for block in message.content]


def chat_reply(http: httpx.Client, **body) -> dict:
    return ask(http, {"temperature": 0, **body})


def test_messages_and_chat_give_the_same_reply(server, http, claude):
    chat = chat_reply(
        http,
        model=server.model,
        max_tokens=40,
        messages=[{"role": "system", "content": SYSTEM}, *QUESTION],
    )
    message = claude.messages.create(
        model=server.model, max_tokens=40, system=SYSTEM, messages=QUESTION, extra_body=GREEDY
    )
    assert message.id.startswith("msg_") and message.model == server.model
    assert all(block.type == "text" for block in message.content)
    assert text_of(message) == chat["choices"][0]["message"]["content"]
    expected_reason = {"stop": "end_turn", "length": "max_tokens"}
    assert message.stop_reason == expected_reason[chat["choices"][0]["finish_reason"]]
    assert prompt_tokens(message.usage) == chat["usage"]["prompt_tokens"]
    assert message.usage.output_tokens == chat["usage"]["completion_tokens"]
    counted = claude.messages.count_tokens(model=server.model, system=SYSTEM, messages=QUESTION)
    assert counted.input_tokens == prompt_tokens(message.usage)


def prompt_tokens(usage) -> int:
    """Anthropic's rule: ``input_tokens`` are what follows the last cache breakpoint, so
    the whole prompt is the sum of the three counts."""
    return (
        usage.input_tokens
        + (usage.cache_read_input_tokens or 0)
        + (usage.cache_creation_input_tokens or 0)
    )


def test_input_tokens_exclude_the_prompts_cache_read(server, claude):
    """The same long prompt twice: the second reads most of it from the prefix cache,
    which ``input_tokens`` no longer counts (it once counted the read twice). As sent
    whole and as streamed (``message_start``'s usage, then ``message_delta``'s)."""
    words = " ".join(f"item{i}" for i in range(300))
    question = [{"role": "user", "content": f"{uuid.uuid4().hex} Count these: {words}"}]
    fields = {"model": server.model, "max_tokens": 2, "messages": question}
    whole = claude.messages.count_tokens(model=server.model, messages=question).input_tokens
    claude.messages.create(**fields)
    again = claude.messages.create(**fields).usage
    assert again.cache_read_input_tokens > 0
    assert prompt_tokens(again) == whole
    assert again.input_tokens == whole - again.cache_read_input_tokens
    with claude.messages.stream(**fields) as stream:
        usages = [e.message.usage for e in stream if e.type == "message_start"]
        streamed = stream.get_final_message().usage
    assert [prompt_tokens(usage) for usage in (*usages, streamed)] == [whole, whole]
    assert usages[0].cache_read_input_tokens > 0


def test_a_stream_tells_the_same_message_event_by_event(server, claude):
    fields = {"model": server.model, "max_tokens": 40, "messages": QUESTION, "extra_body": GREEDY}
    whole = claude.messages.create(**fields)
    with claude.messages.stream(**fields) as stream:
        kinds = [event.type for event in stream]
        streamed = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_delta" in kinds
    assert blocks_of(streamed) == blocks_of(whole)
    assert (streamed.stop_reason, streamed.usage) == (whole.stop_reason, whole.usage)


def test_raw_events_with_x_api_key_start_with_a_ping_and_end_without_done(server):
    body = {"model": server.model, "max_tokens": 8, "messages": QUESTION, "stream": True}
    headers = {"x-api-key": server.api_key, "anthropic-version": "2023-06-01"}
    response = httpx.post(server.url("/v1/messages"), json=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    frames = [frame.split("\n") for frame in response.text.split("\n\n") if frame]
    names = [event.removeprefix("event: ") for event, _ in frames]
    assert names == [json.loads(data.removeprefix("data: "))["type"] for _, data in frames]
    assert names[:2] == ["message_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert "[DONE]" not in response.text


def test_a_stop_sequence_ends_the_reply_and_is_named(server, claude):
    fields = {"model": server.model, "max_tokens": 40, "messages": QUESTION, "extra_body": GREEDY}
    full = text_of(claude.messages.create(**fields))
    words = full.split()
    assert len(words) >= 3, f"too short a reply to cut: {full!r}"
    stop = words[len(words) // 2]
    cut = claude.messages.create(**fields, stop_sequences=[stop])
    assert (cut.stop_reason, cut.stop_sequence) == ("stop_sequence", stop)
    assert text_of(cut) == full[: full.index(stop)]


def test_max_tokens_cuts_the_reply(server, claude):
    fields = {"model": server.model, "messages": QUESTION, "extra_body": GREEDY}
    full = claude.messages.create(**fields, max_tokens=40)
    assert full.usage.output_tokens > 3, "the reply must be longer than the cut"
    cut = claude.messages.create(**fields, max_tokens=3)
    assert (cut.stop_reason, cut.stop_sequence, cut.usage.output_tokens) == ("max_tokens", None, 3)
    assert full.content[0].text.startswith(cut.content[0].text)


# -- bad input ------------------------------------------------------------------------


def test_missing_max_tokens_is_anthropics_400(server):
    body = {"model": server.model, "messages": QUESTION}
    headers = {"x-api-key": server.api_key}
    response = httpx.post(server.url("/v1/messages"), json=body, headers=headers, timeout=60)
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages.[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]},
            "messages.[0].content.[0]",
        ),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "bash_20250124"),
    ],
    ids=["text-block-without-text", "unknown-block", "unknown-tool-type"],
)
def test_bad_blocks_and_tools_are_400s_naming_them(server, claude, fields, named):
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude.messages.create(
            **{"model": server.model, "max_tokens": 8, "messages": QUESTION, **fields}
        )
    error = raised.value.body["error"]
    assert error["type"] == "invalid_request_error" and named in error["message"]


def test_a_wrong_key_is_an_authentication_error(server):
    client = anthropic.Anthropic(base_url=server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client.messages.create(model=server.model, max_tokens=8, messages=QUESTION)
    assert raised.value.body["error"]["type"] == "authentication_error"


def test_thinking_on_a_model_that_does_not_reason_is_a_400(server, claude):
    with pytest.raises(anthropic.BadRequestError) as raised:
        claude.messages.create(
            model=server.model, max_tokens=2048, messages=QUESTION, thinking=THINKING
        )
    assert "thinking" in raised.value.body["error"]["message"]


# -- disconnect -----------------------------------------------------------------------


def test_disconnect_mid_stream_aborts_in_engine(server, http):
    """As chat's test (tests/test_disconnect.py): ~2000 tokens still to go (vLLM's
    ``ignore_eos`` extension) when the client closes its connection."""
    essay = [{"role": "user", "content": "Write a very long essay about the sea."}]
    body = {"model": server.model, "max_tokens": 2000, "ignore_eos": True, "stream": True}
    assert_a_disconnect_mid_stream_aborts(
        server,
        http,
        "/v1/messages",
        {**body, "messages": essay},
        running="event: content_block_delta",
        lines_running=4,
        headers={"x-api-key": server.api_key},
    )


# -- tools and thinking (demo adapters) -----------------------------------------------


def _calls(message) -> list[tuple[str, dict]]:
    return [(block.name, block.input) for block in message.content if block.type == "tool_use"]


def test_a_tool_call_and_its_round_trip_match_chat(parser_http, parser_claude):
    question = [{"role": "user", "content": "What is the weather in Tokyo?"}]
    chat_tools = [WEATHER_TOOLS[0]]
    chat = chat_reply(
        parser_http, model="weather", max_tokens=200, messages=question, tools=chat_tools
    )
    chat_calls = chat["choices"][0]["message"]["tool_calls"]
    fields = {"model": "weather", "max_tokens": 200, "tools": [WEATHER_TOOL], "extra_body": GREEDY}
    message = parser_claude.messages.create(**fields, messages=question)
    expected = [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in chat_calls]
    assert _calls(message) == expected
    assert message.stop_reason == "tool_use"
    assert all(b.id.startswith("toolu_") for b in message.content if b.type == "tool_use")
    with parser_claude.messages.stream(**fields, messages=question) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        streamed = stream.get_final_message()
    assert "input_json_delta" in deltas
    assert (_calls(streamed), streamed.stop_reason) == (expected, "tool_use")

    call = next(block for block in message.content if block.type == "tool_use")
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 22 C"}
    answered = [
        *question,
        {"role": "assistant", "content": message.content},  # as Anthropic's docs do
        {"role": "user", "content": [result]},
    ]
    chat_answered = [
        *question,
        {"role": "assistant", "content": None, "tool_calls": chat_calls},
        {"role": "tool", "tool_call_id": chat_calls[0]["id"], "content": "sunny, 22 C"},
    ]
    if text_of(message):
        chat_answered[1]["content"] = text_of(message)
    final = parser_claude.messages.create(**fields, messages=answered)
    chat_final = chat_reply(
        parser_http, model="weather", max_tokens=200, messages=chat_answered, tools=chat_tools
    )
    assert text_of(final) == chat_final["choices"][0]["message"]["content"]
    assert final.stop_reason == "end_turn" and not _calls(final)


def test_thinking_comes_back_as_thinking_blocks(parser_server, parser_http, parser_claude):
    question = [{"role": "user", "content": "What is the capital of France?"}]
    template = {"chat_template": parser_server.qwen3_template}
    chat = chat_reply(parser_http, model="thinker", max_tokens=1100, messages=question, **template)
    expected = chat["choices"][0]["message"]
    assert expected.get("reasoning_content"), "the adapter did not think"
    fields = {
        "model": "thinker",
        "max_tokens": 1100,
        "messages": question,
        "extra_body": {**GREEDY, **template},
    }
    message = parser_claude.messages.create(**fields, thinking=THINKING)
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == expected["reasoning_content"]
    assert message.content[1].text == expected["content"]
    with parser_claude.messages.stream(**fields, thinking=THINKING) as stream:
        deltas = {e.delta.type for e in stream if e.type == "content_block_delta"}
        streamed = stream.get_final_message()
    assert deltas == {"thinking_delta", "text_delta"}
    assert blocks_of(streamed) == blocks_of(message)
    unthinking = parser_claude.messages.create(**fields)
    assert [block.type for block in unthinking.content] == ["text"]
    assert unthinking.content[0].text == expected["content"]
