"""Forced choices on a reasoning model (issue 24, section 1): a named ``tool_choice``,
``required`` and a JSON ``response_format`` constrain the reply with a grammar, and the
grammar must start where the reasoning ends, or the whole reply is reasoning.

The ``thinker`` demo adapter thinks in ``<think>…</think>`` before it answers, on the
reasoning server of tests/parser_fixtures.py (``--reasoning-parser qwen3``). Each reply
must carry its reasoning in ``reasoning_content`` and then the call (or the JSON content),
whose arguments match the schema, streamed or not. Thinking may instead be turned off for
the request (Qwen3's ``enable_thinking``): then there is no reasoning, and the call is the
whole reply.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from parser_fixtures import ParserServer
from tool_replies import ask, ask_streamed, joined

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 20}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": CITY,
    },
}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "place", "schema": CITY}}

#: Each forced choice: its request fields.
CHOICES = {
    "named": {"tools": [WEATHER], "tool_choice": NAMED},
    "required": {"tools": [WEATHER], "tool_choice": "required"},
    "json": {"response_format": JSON_FORMAT},
}


def thinker(template: str, **fields) -> dict:
    return {
        "model": "thinker",
        "messages": QUESTION,
        "chat_template": template,
        "temperature": 0,
        "max_tokens": 120,
        **fields,
    }


def opened_in_prompt(server: ParserServer) -> str:
    """Qwen3's template with the reasoning opened in the prompt (QwQ, R1-distill): the
    reply starts inside ``<think>``, and only ``</think>`` ends it."""
    opened = server.qwen3_template.replace(
        "{{- '<|im_start|>assistant\\n' }}", "{{- '<|im_start|>assistant\\n<think>\\n' }}"
    )
    assert opened != server.qwen3_template
    return opened


def reply_parts(http, body: dict, streamed: bool) -> tuple[str, str, list[tuple[str, str]], str]:
    """(reasoning, content, calls as (name, arguments), finish_reason) of one reply."""
    if streamed:
        message = joined(ask_streamed(http, body))
        calls = [(call["name"], call["arguments"]) for call in message["tool_calls"]]
        finish = message["finish_reason"]
    else:
        choice = ask(http, body)["choices"][0]
        message, finish = choice["message"], choice["finish_reason"]
        functions = [call["function"] for call in message.get("tool_calls") or []]
        calls = [(function["name"], function["arguments"]) for function in functions]
    return message.get("reasoning_content") or "", message["content"] or "", calls, finish


def assert_the_forced_answer(kind: str, content: str, calls: list, finish: str) -> None:
    assert finish != "length", "the reply ran out of tokens"
    if kind == "json":
        assert calls == []
        jsonschema.validate(json.loads(content), CITY)
        return
    assert content == "" and calls, f"no call, content {content!r}"
    for name, arguments in calls:
        assert name == "get_weather"
        jsonschema.validate(json.loads(arguments), CITY)
    assert finish == ("stop" if kind == "named" else "tool_calls")


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("kind", list(CHOICES))
def test_the_grammar_starts_where_the_reasoning_ends(parser_server, parser_http, kind, streamed):
    body = thinker(parser_server.qwen3_template, **CHOICES[kind])
    reasoning, content, calls, finish = reply_parts(parser_http, body, streamed)
    assert reasoning.strip() and "</think>" not in reasoning, f"no reasoning: {reasoning!r}"
    assert_the_forced_answer(kind, content, calls, finish)


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_a_prompt_that_opened_the_reasoning_still_ends_in_the_call(
    parser_server, parser_http, streamed
):
    body = thinker(opened_in_prompt(parser_server), **CHOICES["named"])
    reasoning, content, calls, finish = reply_parts(parser_http, body, streamed)
    assert reasoning.strip(), "no reasoning"
    assert_the_forced_answer("named", content, calls, finish)


@pytest.mark.parametrize(("kind", "streamed"), [("required", True), ("json", False)])
def test_thinking_turned_off_makes_the_forced_answer_the_whole_reply(
    parser_server, parser_http, kind, streamed
):
    off = {"chat_template_kwargs": {"enable_thinking": False}}
    body = thinker(parser_server.qwen3_template, **CHOICES[kind], **off)
    reasoning, content, calls, finish = reply_parts(parser_http, body, streamed)
    assert reasoning == ""
    assert_the_forced_answer(kind, content, calls, finish)
