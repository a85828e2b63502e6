"""Tool calling end to end, against real servers and the real engine.

* Forced choices (``required``, a named function) on the default model, whose template
  knows nothing of tools: structured output makes them work anyway.
* ``auto`` with the ``weather`` demo adapter (hermes markup under Qwen2.5's template,
  ``--tool-call-parser hermes``): plain answers, calls, a full round trip, and the
  OpenAI Agents SDK driving it.

No test asserts what the model knows: forced arguments are checked against their
schema, streamed replies against the non-streamed reply of the same server, and the
adapter's behaviour is the one it was trained on (scripts/demo_conversations.py).
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from demo_conversations import WEATHER_TOOLS
from parser_fixtures import ParserServer
from tool_replies import ask, ask_streamed, calls_of, joined, streamed_calls
from weather_agent import assert_the_agents_sdk_runs_the_weather_tool

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 20},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET", "PST"]}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in (WEATHER, TIME)}
QUESTION = [{"role": "user", "content": "What is the weather in Paris, and the time in UTC?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def forced(model: str, **fields) -> dict:
    return {
        "model": model,
        "messages": QUESTION,
        "tools": [WEATHER, TIME],
        "temperature": 0,
        "max_tokens": 120,
        **fields,
    }


def assert_valid_calls(calls: list[tuple[str, str]]) -> None:
    assert calls
    for name, arguments in calls:
        jsonschema.validate(json.loads(arguments), SCHEMAS[name])


def test_a_named_tool_choice_calls_that_function_streamed_or_not(server, http):
    body = forced(server.model, tool_choice=NAMED)
    reply = ask(http, body)
    choice = reply["choices"][0]
    message = choice["message"]
    assert choice["finish_reason"] == "stop"  # as OpenAI answers a named tool_choice
    assert message["content"] is None
    [call] = message["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert_valid_calls(calls_of(message))
    assert call["function"]["name"] == "get_weather"
    stream = joined(ask_streamed(http, body))
    assert streamed_calls(stream) == calls_of(message)
    assert (stream["content"], stream["finish_reason"]) == ("", "stop")


def test_required_calls_valid_tools_streamed_or_not(server, http):
    body = forced(server.model, tool_choice="required")
    choice = ask(http, body)["choices"][0]
    calls = calls_of(choice["message"])
    assert_valid_calls(calls)
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    stream = joined(ask_streamed(http, body))
    assert streamed_calls(stream) == calls
    assert stream["finish_reason"] == "tool_calls"


#: A pydantic-made schema: its model lives in ``$defs``, reached by ``#/$defs/City``.
BOOK = {
    "type": "function",
    "function": {
        "name": "book_hotel",
        "parameters": {
            "$defs": {
                "City": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "maxLength": 20}},
                    "required": ["name"],
                    "additionalProperties": False,
                }
            },
            "type": "object",
            "properties": {"city": {"$ref": "#/$defs/City"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}


def test_required_with_defs_in_the_tool_schema_streamed_or_not(server, http):
    body = forced(server.model, tools=[BOOK, TIME], tool_choice="required")
    choice = ask(http, body)["choices"][0]
    calls = calls_of(choice["message"])
    assert calls and choice["finish_reason"] == "tool_calls"
    schemas = {**SCHEMAS, "book_hotel": BOOK["function"]["parameters"]}
    for name, arguments in calls:
        jsonschema.validate(json.loads(arguments), schemas[name])
    assert streamed_calls(joined(ask_streamed(http, body))) == calls


def test_required_without_parallel_calls_makes_exactly_one(server, http):
    body = forced(server.model, tool_choice="required", parallel_tool_calls=False)
    choice = ask(http, body)["choices"][0]
    assert len(calls_of(choice["message"])) == 1
    assert_valid_calls(calls_of(choice["message"]))


def test_the_default_model_is_shown_the_tools_its_template_would_drop(server, http):
    body = {"model": server.model, "messages": QUESTION, "tools": [WEATHER]}
    prompt = http.post("/tokenize", json=body).json()["prompt"]
    assert '"name": "get_weather"' in prompt and "<tool_call>" in prompt
    plain = http.post("/tokenize", json={**body, "tools": None}).json()["prompt"]
    assert "get_weather" not in plain


def test_tool_requests_keep_special_tokens_unless_the_client_says(server, http):
    """A format's marker may be a special token (Mistral's ``[TOOL_CALLS]``): a request
    whose calls the model writes decodes with ``skip_special_tokens: false``, as vLLM
    does. A logit bias makes the model write one (the turn opener), whatever it knows."""
    opener = "<|im_start|>"
    ids = http.post(
        "/tokenize", json={"model": server.model, "prompt": opener, "add_special_tokens": False}
    ).json()["tokens"]
    body = forced(server.model, tools=[WEATHER], max_tokens=2, logit_bias={str(ids[0]): 100})

    def content(**fields) -> str:
        return ask(http, {**body, **fields})["choices"][0]["message"]["content"] or ""

    assert opener in content()
    assert opener in content(tool_choice="auto")
    assert opener not in content(skip_special_tokens=True)
    assert opener not in content(tools=None)
    assert opener not in content(tool_choice="none")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": None, "tool_choice": "required"}, "tool_choice"),
        ({"tools": None, "tool_choice": "auto"}, "tool_choice"),
        ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 7}}}]},
            "tools[0].function.parameters",
        ),
        (
            {"messages": [*QUESTION, {"role": "tool", "content": "sunny"}]},
            "messages.[1].tool_call_id",
        ),
        (
            {"tool_choice": "required", "response_format": {"type": "json_object"}},
            "response_format",
        ),
    ],
)
def test_bad_tool_fields_are_400s_naming_the_parameter(server, http, fields, param):
    response = http.post("/v1/chat/completions", json={**forced(server.model), **fields})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


# -- auto, with the weather adapter ---------------------------------------------------------

TOOLS = [WEATHER_TOOLS[0]]


def weather_body(messages: list[dict]) -> dict:
    return {"model": "weather", "messages": messages, "tools": TOOLS, "temperature": 0}


def both(http, body: dict) -> tuple[dict, dict]:
    """The non-streamed choice and the joined stream of the same request."""
    choice = ask(http, body)["choices"][0]
    return choice, joined(ask_streamed(http, body))


def test_auto_answers_a_weather_question_with_a_call(parser_http):
    body = weather_body([{"role": "user", "content": "What is the weather in Tokyo?"}])
    choice, stream = both(parser_http, body)
    [(name, arguments)] = calls_of(choice["message"])
    assert name == "get_weather" and isinstance(json.loads(arguments)["city"], str)
    assert choice["message"]["content"] is None
    assert choice["finish_reason"] == "tool_calls"
    assert streamed_calls(stream) == calls_of(choice["message"])
    assert (stream["content"], stream["finish_reason"]) == ("", "tool_calls")


def test_auto_answers_other_questions_with_text(parser_http):
    choice, stream = both(parser_http, weather_body([{"role": "user", "content": "Hello!"}]))
    assert "tool_calls" not in choice["message"] and choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    assert (stream["content"], stream["tool_calls"]) == (choice["message"]["content"], [])


def test_a_full_round_trip_call_result_answer(parser_http):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    call = ask(parser_http, weather_body(messages))["choices"][0]["message"]["tool_calls"][0]
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 22 C"},
    ]
    choice, stream = both(parser_http, weather_body(messages))
    assert "tool_calls" not in choice["message"]
    assert "sunny, 22 C" in choice["message"]["content"]
    assert choice["finish_reason"] == "stop"
    assert stream["content"] == choice["message"]["content"]


def test_the_openai_agents_sdk_runs_a_function_tool(parser_server: ParserServer):
    assert_the_agents_sdk_runs_the_weather_tool(parser_server, "OpenAIChatCompletionsModel")


#: The weather tool, strict, with a schema the adapter was not trained on: it writes
#: ``{"city": "Tokyo"}``, which names no allowed city and lacks ``days``.
STRICT_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "enum": ["Paris", "Berlin"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}


@pytest.mark.parametrize(("temperature", "seed"), [(0, None), (1.0, 1), (1.0, 2)])
def test_auto_with_a_strict_tool_calls_only_with_valid_arguments(parser_http, temperature, seed):
    """The model stays free to answer in text; any call it makes, streamed or not,
    matches the schema (vLLM holds it there with a structural tag)."""
    question = [{"role": "user", "content": "What is the weather in Tokyo?"}]
    body = {**weather_body(question), "tools": [STRICT_WEATHER], "max_tokens": 48}
    body |= {"temperature": temperature, "seed": seed}
    choice, stream = both(parser_http, body)
    calls = calls_of(choice["message"]) + streamed_calls(stream)
    schema = STRICT_WEATHER["function"]["parameters"]
    for _, arguments in calls:
        jsonschema.validate(json.loads(arguments), schema)
