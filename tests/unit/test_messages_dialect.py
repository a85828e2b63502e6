"""Anthropic's Messages dialect without an engine: the translation into a chat request,
the content-block events, and Anthropic's error shape on ``/v1/messages`` (through the
real app around a FaultInjectingEngine, which measures the frontend alone)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fault_engines import MODEL, FaultInjectingEngine, in_process_client
from spec import assert_anthropic_error

from engines.base import EngineError
from openai_frontend.anthropic.encode import ContentBlocks, stop_reason
from openai_frontend.anthropic.translate import to_chat
from openai_frontend.parsing.base import ParsedDelta, ToolCallDelta
from openai_frontend.schemas.messages import MessagesRequest

KEY = "secret-key"
MESSAGE = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _post(path: str, body: object, engine=None, headers=None, **config) -> tuple[int, str]:
    response = _response(path, body, engine, headers, **config)
    return response.status_code, response.text


def _response(path: str, body: object, engine=None, headers=None, **config) -> httpx.Response:
    async def post() -> httpx.Response:
        async with in_process_client(engine or FaultInjectingEngine(), **config) as client:
            response = await client.post(path, json=body, headers=headers or {})
            await response.aread()
            return response

    return asyncio.run(post())


def _anthropic_error(text: str) -> dict:
    body = json.loads(text)
    assert_anthropic_error(body)
    assert body["type"] == "error", body
    return body["error"]


# -- translation ----------------------------------------------------------------------


def test_a_tool_conversation_becomes_the_chat_conversation():
    body = MessagesRequest.model_validate(
        {
            **MESSAGE,
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                        {"type": "text", "text": "And tomorrow?"},
                    ],
                },
            ],
            "tools": [WEATHER],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "stop_sequences": ["END"],
            "top_k": 5,
            "metadata": {"user_id": "u-1"},
        }
    )
    chat = to_chat(body)
    messages = [m.model_dump(exclude_none=True) for m in chat.messages]
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "toolu_1"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert chat.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather in a city.",
            },
        }
    ]
    assert chat.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert (chat.stop, chat.top_k, chat.user, chat.max_tokens) == (["END"], 5, "u-1", 8)
    assert chat.include_reasoning is False and chat.continue_final_message is False


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("auto", "auto"), ("any", "required"), ("none", "none")],
)
def test_tool_choice_types_map_to_chat_modes(choice, expected):
    body = MessagesRequest.model_validate(
        {**MESSAGE, "tools": [WEATHER], "tool_choice": {"type": choice}}
    )
    assert to_chat(body).tool_choice == expected


def test_disable_parallel_tool_use_and_prefill_and_thinking():
    body = MessagesRequest.model_validate(
        {
            **MESSAGE,
            "max_tokens": 2048,
            "messages": [
                {"role": "user", "content": "Count."},
                {"role": "assistant", "content": "1, 2,"},
            ],
            "tools": [WEATHER],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
        }
    )
    chat = to_chat(body)
    assert chat.parallel_tool_calls is False
    assert chat.continue_final_message is True
    assert chat.include_reasoning is True


# -- content blocks -------------------------------------------------------------------


def test_thinking_text_and_tool_calls_get_their_own_blocks_in_order():
    blocks = ContentBlocks()
    events = blocks.add(ParsedDelta(reasoning="let me see"))
    events += blocks.add(ParsedDelta(reasoning=" more", content="Sure."))
    events += blocks.add(
        ParsedDelta(tool_calls=[ToolCallDelta(0, '{"ci', id="call_x", name="get_weather")])
    )
    events += blocks.add(ParsedDelta(tool_calls=[ToolCallDelta(0, 'ty": "Rome"}')]))
    events += blocks.close()
    summary = [
        (e["type"], e["index"], (e.get("content_block") or e.get("delta") or {}).get("type"))
        for e in events
    ]
    assert summary == [
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
    ]
    tool = events[7]["content_block"]
    assert tool["id"].startswith("toolu_") and tool["name"] == "get_weather"
    assert blocks.used_tools


@pytest.mark.parametrize(
    ("finish", "tools", "matched", "expected"),
    [
        ("stop", False, None, "end_turn"),
        ("length", False, None, "max_tokens"),
        ("length", True, None, "max_tokens"),
        ("stop", True, None, "tool_use"),
        ("tool_calls", True, None, "tool_use"),
        ("stop", False, "END", "stop_sequence"),
        ("repetition", False, None, "end_turn"),
    ],
)
def test_stop_reasons(finish, tools, matched, expected):
    assert stop_reason(finish, tools, matched) == expected


def test_a_finish_reason_without_an_anthropic_value_is_a_bug_not_a_stop_reason():
    with pytest.raises(RuntimeError):
        stop_reason("content_filter", False, None)


@pytest.mark.parametrize("finish", ["repetition", "abort"])
@pytest.mark.parametrize("stream", [False, True])
def test_the_engines_other_finish_reasons_end_the_turn(finish, stream):
    """vLLM's ``repetition`` and an engine's abort (injected) are ``end_turn``: only
    Anthropic's values ever reach a client (``repetition`` once leaked through)."""
    engine = FaultInjectingEngine(tokens_before_fault=2, finish_reason=finish)
    status, text = _post("/v1/messages", {**MESSAGE, "stream": stream}, engine=engine)
    assert status == 200, text
    if stream:
        data = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
        text = json.dumps(next(e["delta"] for e in data if e["type"] == "message_delta"))
    assert json.loads(text)["stop_reason"] == "end_turn"


# -- errors in Anthropic's shape ------------------------------------------------------


def test_missing_max_tokens_is_an_anthropic_400():
    body = {key: value for key, value in MESSAGE.items() if key != "max_tokens"}
    status, text = _post("/v1/messages", body)
    assert status == 400
    error = _anthropic_error(text)
    assert error["type"] == "invalid_request_error" and "max_tokens" in error["message"]


@pytest.mark.parametrize(
    ("content", "path"),
    [
        ([{"type": "text"}], "messages.[0].content.[0]"),
        ([{"type": "tool_use", "id": "t", "name": "f", "input": "x"}], "messages.[0].content.[0]"),
    ],
)
def test_malformed_blocks_are_400s_naming_the_path(content, path):
    body = {**MESSAGE, "messages": [{"role": "user", "content": content}]}
    status, text = _post("/v1/messages", body)
    assert status == 400
    assert path in _anthropic_error(text)["message"]


TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
TOOL_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}


@pytest.mark.parametrize(
    ("messages", "named"),
    [
        ([{"role": "user", "content": [TOOL_USE]}], "messages.0.content.0: tool_use"),
        (
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "ok"}, TOOL_RESULT]},
                {"role": "user", "content": "go on"},
            ],
            "messages.1.content.1: tool_result",
        ),
        (
            [{"role": "user", "content": [{"type": "thinking", "thinking": "x"}]}],
            "messages.0.content.0: thinking",
        ),
        (
            [{"role": "user", "content": "hi"}, {"role": "system", "content": [TOOL_RESULT]}],
            "messages.1.content.0: tool_result",
        ),
    ],
    ids=["tool_use-from-user", "tool_result-from-assistant", "thinking-from-user", "system"],
)
def test_a_block_in_a_turn_it_cannot_belong_to_is_a_400_naming_it(messages, named):
    """As Anthropic answers; such blocks were dropped from the prompt with a 200."""
    status, text = _post("/v1/messages", {**MESSAGE, "messages": messages, "tools": [WEATHER]})
    assert status == 400, text
    error = _anthropic_error(text)
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(named + " blocks can only be in")


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}},
    ],
    ids=["image", "document"],
)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_image_and_document_blocks_are_400s_that_say_so(block, path):
    messages = [{"role": "user", "content": [{"type": "text", "text": "see"}, block]}]
    status, text = _post(path, {**MESSAGE, "messages": messages})
    assert status == 400, text
    assert _anthropic_error(text)["message"].startswith(
        f"messages.0.content.1: {block['type']} blocks are not supported by this gateway"
    )


@pytest.mark.parametrize("kind", [[], {}], ids=["list", "object"])
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_a_block_type_that_is_not_a_string_is_a_400_naming_the_block(kind, path):
    """Found by the fuzz in CI: an unhashable ``type`` raised TypeError in the
    unsupported-block check, a 500."""
    messages = [{"role": "user", "content": [{"type": kind}]}]
    status, text = _post(path, {**MESSAGE, "messages": messages})
    assert status == 400, text
    assert "messages.[0].content.[0]" in _anthropic_error(text)["message"]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/v1/messages", MESSAGE, {"x-api-key": KEY}, 200),
        ("/v1/messages", {**MESSAGE, "stream": True}, {"x-api-key": KEY}, 200),
        (
            "/v1/messages/count_tokens",
            {"model": MODEL, "messages": MESSAGE["messages"]},
            {"x-api-key": KEY},
            200,
        ),
        ("/v1/messages", {**MESSAGE, "max_tokens": 0}, {"x-api-key": KEY}, 400),
        ("/v1/messages", {**MESSAGE, "model": "nope"}, {"x-api-key": KEY}, 404),
        ("/v1/messages", MESSAGE, {"x-api-key": "wrong"}, 401),
    ],
    ids=["message", "stream", "count_tokens", "400", "404", "401"],
)
def test_every_messages_response_carries_a_request_id(path, body, headers, status):
    """Anthropic's ``request-id`` (its SDKs' ``_request_id``), the access log's id."""
    response = _response(path, body, headers=headers, api_keys=(KEY,))
    assert response.status_code == status, response.text
    assert response.headers["request-id"] == response.headers["x-request-id"]


def test_chat_responses_carry_no_anthropic_request_id():
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    response = _response("/v1/chat/completions", chat)
    assert response.status_code == 200 and "request-id" not in response.headers


@pytest.mark.parametrize(
    ("messages", "named"),
    [
        ([{"role": "user", "content": []}], "messages.0"),
        ([{"role": "user", "content": ""}], "messages.0"),
        ([{"role": "user", "content": "hi"}, {"role": "user", "content": []}], "messages.1"),
        ([{"role": "user", "content": [{"type": "text", "text": ""}]}], "messages.0.content.0"),
    ],
)
def test_empty_contents_are_400s_naming_the_message(messages, named):
    """Anthropic's rule; found by the fuzzer as a 500 (an empty user turn translated into
    no chat message at all)."""
    status, text = _post("/v1/messages", {**MESSAGE, "messages": messages})
    assert status == 400, text
    assert _anthropic_error(text)["message"].startswith(named + ":")


def test_an_empty_final_assistant_message_is_a_prefill():
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": []}]
    status, text = _post("/v1/messages", {**MESSAGE, "messages": messages})
    assert status == 200, text


def test_an_unknown_tool_type_is_a_400_naming_it():
    tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    status, text = _post("/v1/messages", {**MESSAGE, "tools": [tool]})
    assert status == 400
    message = _anthropic_error(text)["message"]
    assert "tools.[0]" in message and "web_search_20250305" in message


def test_thinking_on_a_model_without_a_reasoning_parser_is_a_400():
    body = {**MESSAGE, "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    status, text = _post("/v1/messages", body)
    assert status == 400
    assert _anthropic_error(text)["message"].startswith("thinking is not supported")


def test_budget_tokens_must_be_below_max_tokens():
    body = {**MESSAGE, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    status, text = _post("/v1/messages", body)
    assert status == 400
    assert "budget_tokens" in _anthropic_error(text)["message"]


def test_unknown_model_is_not_found_error():
    status, text = _post("/v1/messages", {**MESSAGE, "model": "nope"})
    assert status == 404
    assert _anthropic_error(text)["type"] == "not_found_error"


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_a_wrong_key_is_an_anthropic_authentication_error(path):
    status, text = _post(path, MESSAGE, headers={"x-api-key": "wrong"}, api_keys=(KEY,))
    assert status == 401
    assert _anthropic_error(text)["type"] == "authentication_error"


def test_x_api_key_opens_messages_and_chat_and_chat_errors_stay_openai():
    status, _ = _post("/v1/messages", MESSAGE, headers={"x-api-key": KEY}, api_keys=(KEY,))
    assert status == 200
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    status, _ = _post("/v1/chat/completions", chat, headers={"x-api-key": KEY}, api_keys=(KEY,))
    assert status == 200
    status, text = _post("/v1/chat/completions", chat, api_keys=(KEY,))
    assert status == 401 and json.loads(text)["error"]["code"] == "invalid_api_key"


def test_an_engine_failure_is_an_api_error():
    engine = FaultInjectingEngine(raises=EngineError("generation failed", 500))
    status, text = _post("/v1/messages", MESSAGE, engine=engine)
    assert status == 500
    assert _anthropic_error(text) == {"type": "api_error", "message": "generation failed"}


def test_a_failure_mid_stream_is_an_anthropic_error_event_and_no_done():
    engine = FaultInjectingEngine(tokens_before_fault=2, raises=EngineError("failed", 500))
    status, text = _post("/v1/messages", {**MESSAGE, "stream": True}, engine=engine)
    assert status == 200
    events = [line[len("event: ") :] for line in text.splitlines() if line.startswith("event: ")]
    assert events[:2] == ["message_start", "ping"]
    assert events[-1] == "error" and "message_stop" not in events
    last = [line for line in text.splitlines() if line.startswith("data: ")][-1]
    assert _anthropic_error(last[len("data: ") :])["type"] == "api_error"
    assert "[DONE]" not in text


def test_count_tokens_counts_the_rendered_prompt():
    status, text = _post(
        "/v1/messages/count_tokens", {"model": MODEL, "messages": MESSAGE["messages"]}
    )
    assert status == 200
    # The fault engine's tokens are UTF-8 bytes: the chatml prompt's length.
    prompt = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert json.loads(text) == {"input_tokens": len(prompt.encode())}


def test_output_config_ignore_eos_and_thinking_display_map_to_chat_fields():
    body = MessagesRequest.model_validate(
        {
            **MESSAGE,
            "output_config": {
                "effort": "low",
                "format": {"type": "json_schema", "schema": {"type": "object"}},
            },
            "thinking": {"type": "adaptive", "display": "omitted"},
            "ignore_eos": True,
        }
    )
    chat = to_chat(body)
    assert chat.chat_template_kwargs == {"reasoning_effort": "low"}
    assert chat.response_format.model_dump() == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": {"type": "object"}},
    }
    assert chat.ignore_eos is True and chat.include_reasoning is False


@pytest.mark.parametrize("display", ["summarized", "updates", None])
def test_every_thinking_display_but_omitted_shows_the_reasoning(display):
    """``updates`` is the beta API's third value; Claude Code 2.1.328 sends it with
    ``--output-format stream-json`` (it was a 400 here)."""
    thinking = {"type": "adaptive", "display": display}
    body = MessagesRequest.model_validate({**MESSAGE, "thinking": thinking})
    assert to_chat(body).include_reasoning is True


def test_adaptive_thinking_on_a_model_that_does_not_reason_just_answers():
    body = {**MESSAGE, "thinking": {"type": "adaptive"}}
    status, text = _post("/v1/messages", body, engine=FaultInjectingEngine(tokens_before_fault=2))
    assert status == 200
    assert [block["type"] for block in json.loads(text)["content"]] == ["text"]


def test_a_tool_use_block_as_the_sdk_sends_it_back_is_accepted():
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    sdk_call = {**call, "caller": {"type": "direct"}, "toolset_name": None}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}
    messages = [
        MESSAGE["messages"][0],
        {"role": "assistant", "content": [sdk_call]},
        {"role": "user", "content": [result]},
    ]
    status, text = _post("/v1/messages", {**MESSAGE, "messages": messages, "tools": [WEATHER]})
    assert status == 200, text


# -- what Claude Code sends -----------------------------------------------------------

CLAUDE_CODE_FIELDS = {
    "thinking": {"type": "adaptive", "display": "omitted"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
    "metadata": {"user_id": '{"device_id":"d","account_uuid":"","session_id":"s"}'},
}


def test_claude_codes_fields_are_taken_on_a_model_without_effort_or_reasoning():
    """Recorded from Claude Code 2.1.328: ``context_management`` was a 400 at once."""
    status, text = _post(
        "/v1/messages",
        {**MESSAGE, **CLAUDE_CODE_FIELDS},
        engine=FaultInjectingEngine(tokens_before_fault=2),
        headers={"anthropic-beta": "context-management-2025-06-27,effort-2025-11-24"},
    )
    assert status == 200, text
    assert json.loads(text)["stop_reason"] == "end_turn"


def test_clearing_tool_results_is_a_400_naming_the_edit():
    edits = [{"type": "clear_thinking_20251015"}, {"type": "clear_tool_uses_20250919"}]
    status, text = _post("/v1/messages", {**MESSAGE, "context_management": {"edits": edits}})
    assert status == 400, text
    message = _anthropic_error(text)["message"]
    assert message.startswith("context_management.edits.1.type: 'clear_tool_uses_20250919'")


def test_a_deferred_tool_stays_out_of_the_prompt_and_a_system_turn_stays_in_place():
    deferred = {**WEATHER, "name": "later", "defer_loading": True}
    body = MessagesRequest.model_validate(
        {
            **MESSAGE,
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "text", "text": "Now in /tmp."}]},
            ],
            "tools": [WEATHER, deferred],
        }
    )
    chat = to_chat(body)
    assert [tool["function"]["name"] for tool in chat.tools] == ["get_weather"]
    assert [(m.role, m.content) for m in chat.messages] == [
        ("user", "hi"),
        ("system", "Now in /tmp."),
    ]
