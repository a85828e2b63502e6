"""The Responses dialect's pure parts: items -> chat messages, tools, output items."""

from __future__ import annotations

import pytest
from spec import assert_valid

from openai_frontend.errors import APIError
from openai_frontend.parsing.base import ParsedDelta, ToolCallDelta
from openai_frontend.responses.items import normalise_input
from openai_frontend.responses.output import OutputBuilder
from openai_frontend.responses.response import response_head, snapshot
from openai_frontend.responses.translate import chat_messages, chat_tools, rename_param
from openai_frontend.schemas.responses import ResponsesRequest


def test_items_become_chat_messages_with_tool_calls_joined_to_their_turn():
    items = normalise_input(
        [
            {"role": "user", "content": "Weather in Rome and Oslo?"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Let me look."}],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "get_weather",
                "arguments": '{"city":"Rome"}',
            },
            {
                "type": "function_call",
                "call_id": "c2",
                "name": "get_weather",
                "arguments": '{"city":"Oslo"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "rain"}],
            },
            {"type": "reasoning", "summary": []},
        ]
    )
    messages = chat_messages("Be brief.", items)
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Rome and Oslo?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]


def test_a_call_without_a_text_turn_opens_an_empty_assistant_message():
    items = normalise_input(
        [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]
    )
    [message] = chat_messages(None, items)
    assert message["role"] == "assistant" and message["content"] is None
    assert message["tool_calls"][0]["id"] == "c"


@pytest.mark.parametrize(
    "given, stored",
    [
        (
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        ),
        (
            {"type": "function_call_output", "call_id": "c", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c", "output": "sunny"},
        ),
    ],
)
def test_call_items_are_stored_completed_under_the_clients_id_or_a_new_one(given, stored):
    """The stored shape ``input_items`` lists back: the client's id kept, else one with
    the kind's prefix; a stray field or a missing call_id is refused by its path."""
    prefix = {"function_call": "fc_", "function_call_output": "fco_"}[given["type"]]
    [kept, made] = normalise_input([{**given, "id": "mine", "status": "incomplete"}, given])
    assert list(kept) == ["id", *stored, "status"]
    assert kept == {"id": "mine", **stored, "status": "completed"}
    assert made["id"].startswith(prefix) and {**made, "id": "mine"} == kept
    for bad, param in [
        ({**given, "stray": 1}, "input[0].stray"),
        ({**given, "call_id": 3}, "input[0].call_id"),
    ]:
        with pytest.raises(APIError) as refused:
            normalise_input([bad])
        assert refused.value.param == param


def test_flat_function_tools_get_chats_nested_shape():
    tools = [
        {
            "type": "function",
            "name": "f",
            "description": "d",
            "parameters": {"type": "object"},
            "strict": None,
        }
    ]
    assert chat_tools(tools) == [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
        }
    ]


def test_chat_parameter_names_are_renamed_to_the_responses_ones():
    assert rename_param("reasoning_effort") == "reasoning.effort"
    assert rename_param("max_completion_tokens") == "max_output_tokens"
    assert rename_param("messages.[3].content") == "input"
    assert rename_param("tools[2].function.parameters") == "tools[2].parameters"
    assert rename_param("tool_choice.function.name") == "tool_choice.name"
    assert rename_param("response_format.json_schema.schema") == "text.format.schema"
    assert rename_param("top_k") == "top_k"


def test_reasoning_text_and_calls_become_valid_items_and_events():
    output = OutputBuilder()
    events = [
        *output.feed(ParsedDelta(reasoning="Think")),
        *output.feed(ParsedDelta(reasoning="ing.")),
        *output.feed(ParsedDelta(content="Calling.")),
        *output.feed(
            ParsedDelta(
                tool_calls=[
                    ToolCallDelta(0, "", "call_1", "get_weather"),
                    ToolCallDelta(0, '{"city":'),
                ]
            )
        ),
        *output.feed(ParsedDelta(tool_calls=[ToolCallDelta(0, '"Rome"}')])),
        *output.finish("completed"),
    ]
    for number, event in enumerate(events):
        assert_valid({**event, "sequence_number": number}, "ResponseStreamEvent")
    kinds = [event["type"] for event in events]
    assert kinds[:4] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
    ]
    assert kinds[-3:] == [
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    reasoning, message, call = output.output
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "Thinking."}]
    assert message["content"][0]["text"] == "Calling." == output.text
    assert (call["call_id"], call["name"], call["arguments"]) == (
        "call_1",
        "get_weather",
        '{"city":"Rome"}',
    )
    assert all(item["status"] == "completed" for item in output.output)
    head = response_head(ResponsesRequest(model="m", input="hi"), "resp_1", stored=True)
    assert_valid(snapshot(head, "completed", output.output), "Response")


def test_an_empty_reply_still_has_its_message():
    output = OutputBuilder()
    events = output.finish("completed")
    assert [item["type"] for item in output.output] == ["message"]
    assert output.text == "" and events[-1]["type"] == "response.output_item.done"


def test_the_request_settings_are_echoed_as_the_spec_wants():
    body = ResponsesRequest(
        model="m",
        input="hi",
        tools=[{"type": "function", "name": "f", "description": "d"}],
        tool_choice={"type": "function", "name": "f"},
        text={"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}},
        reasoning={"effort": "low"},
        user="u1",
        metadata={"k": "v"},
    )
    response = snapshot(response_head(body, "resp_1", stored=False), "in_progress", [])
    assert_valid(response, "Response")
    assert response["tools"] == [
        {"type": "function", "name": "f", "description": "d", "parameters": None, "strict": None}
    ]
    assert response["text"]["format"]["schema"] == {"type": "object"}
    assert (response["user"], response["metadata"]) == ("u1", {"k": "v"})
