"""Format parsers for a request: only the request's functions become calls, and a call
object may spell its arguments ``"parameters"``."""

from __future__ import annotations

import json

from hypothesis import given, settings
from parsers_support import collect, splits, stream, without_ids

from openai_frontend.parsing.pipeline import chat_finish_reason, parse_whole
from openai_frontend.parsing.registry import make_output_parser, tool_parser_for_request

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]

FENCED = (
    "To delete it, a model would write:\n```\n"
    '<tool_call>\n{"name": "rm_rf", "arguments": {"path": "/"}}\n</tool_call>\n```\nDone.'
)
DECLARED = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def parser(format_name: str = "hermes"):
    return make_output_parser(None, tool_parser_for_request(format_name, TOOLS, "auto"))


def test_a_call_to_an_undeclared_function_stays_content():
    fields = parse_whole(parser(), FENCED)
    assert fields == {"content": FENCED}


def test_an_undeclared_call_does_not_finish_with_tool_calls():
    output = parser()
    deltas = stream(output, [FENCED[:40], FENCED[40:]])
    assert collect(deltas) == {"content": FENCED}
    assert chat_finish_reason("stop", output.called_tools) == "stop"


def test_a_declared_call_after_an_undeclared_one_is_still_a_call():
    fields = parse_whole(parser(), FENCED + DECLARED)
    assert fields["content"] == FENCED
    [call] = fields["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


def test_other_formats_check_the_names_too():
    for format_name, text in [
        ("mistral", '[TOOL_CALLS] [{"name": "rm_rf", "arguments": {}}]'),
        ("mistral", '[TOOL_CALLS]rm_rf[ARGS]{"path": "/"}'),
        ("llama3_json", '{"name": "rm_rf", "parameters": {"path": "/"}}'),
        ("pythonic", '[rm_rf(path="/")]'),
    ]:
        assert parse_whole(parser(format_name), text) == {"content": text}, format_name


@settings(max_examples=200, deadline=None)
@given(pieces=splits(FENCED + DECLARED + FENCED))
def test_any_split_keeps_the_undeclared_call_as_content(pieces):
    expected = parse_whole(parser(), FENCED + DECLARED + FENCED)
    assert without_ids(collect(stream(parser(), pieces))) == without_ids(expected)


def test_parameters_is_accepted_for_arguments():
    text = '<tool_call>\n{"name": "get_weather", "parameters": {"city": "Paris"}}\n</tool_call>'
    [call] = parse_whole(parser(), text)["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    listed = '[TOOL_CALLS] [{"name": "get_weather", "parameters": {"city": "Oslo"}}]'
    [call] = parse_whole(parser("mistral"), listed)["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}


def test_arguments_wins_over_parameters():
    text = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}, '
        '"parameters": {"city": "Oslo"}}</tool_call>'
    )
    [call] = parse_whole(parser(), text)["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": "Rome"}
