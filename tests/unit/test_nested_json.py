"""JSON nested past Python's recursion limit in a request, through the real app.

Python's JSON decoder and jsonschema's metaschema check recurse per level, and a
RecursionError is no ValueError: these were 500s (the history case even left the
error middleware). Each is a 400 naming the field, before any engine work
(FaultInjectingEngine, no fault injected, records what the engine was asked).
"""

from __future__ import annotations

import asyncio

import pytest
from fault_engines import MODEL, FaultInjectingEngine, in_process_client
from spec import assert_valid
from tool_replies import tool_call_history

QUESTION = [{"role": "user", "content": "Weather in Paris?"}]
WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def _schema_nested(levels: int) -> dict:
    schema: dict = {"type": "object"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


DEEP_TOOL = {"type": "function", "function": {"name": "f", "parameters": _schema_nested(150)}}
DEEP_HISTORY = tool_call_history(QUESTION, "get_weather", "[" * 1500 + "]" * 1500)
DEEP_ARGUMENTS = "messages.[1].tool_calls.[0].function.arguments"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": QUESTION, "tools": [WEATHER, DEEP_TOOL]}, "tools[1].function.parameters"),
        ({"messages": DEEP_HISTORY, "tools": [WEATHER], "tool_choice": "auto"}, DEEP_ARGUMENTS),
        ({"messages": DEEP_HISTORY}, DEEP_ARGUMENTS),
    ],
    ids=["parameters schema", "history arguments, tool prompt", "history arguments, no tools"],
)
def test_json_nested_too_deeply_is_a_400_naming_the_field(fields, param, stream):
    engine = FaultInjectingEngine()

    async def post() -> tuple[int, dict]:
        async with in_process_client(
            engine, raise_app_exceptions=True, tool_call_parser="hermes"
        ) as client:
            body = {"model": MODEL, "max_tokens": 4, "stream": stream, **fields}
            response = await client.post("/v1/chat/completions", json=body)
            return response.status_code, response.json()

    status, answer = asyncio.run(post())
    assert status == 400, answer
    assert_valid(answer, "ErrorResponse")
    assert answer["error"]["param"] == param
    assert engine.generated == []
