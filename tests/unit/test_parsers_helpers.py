"""The pure helpers around tool calling: forced-choice schemas, request checks and
parser inference from real chat templates."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from parsers_support import collect, stream

from openai_frontend.errors import APIError
from openai_frontend.parsing.detect import InferredParsers, infer_parsers
from openai_frontend.parsing.forced import (
    NO_PARAMETERS,
    forced_tool_schema,
    parse_forced_output,
)
from openai_frontend.parsing.pipeline import OutputParser
from openai_frontend.parsing.registry import (
    check_parser_names,
    make_output_parser,
    tool_parser_for_request,
)
from openai_frontend.parsing.validation import validate_tool_messages, validate_tools
from openai_frontend.schemas.chat import ChatMessage

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city"],
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time"}},
]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def test_named_choice_forces_that_functions_parameters():
    assert forced_tool_schema(TOOLS, NAMED) == WEATHER
    assert forced_tool_schema(TOOLS, {"type": "function", "function": {"name": "get_time"}}) == (
        NO_PARAMETERS
    )
    assert forced_tool_schema(TOOLS, "auto") is None
    assert forced_tool_schema(TOOLS, None) is None


def test_required_schema_accepts_calls_of_the_given_tools_only():
    schema = forced_tool_schema(TOOLS, "required")
    jsonschema.Draft202012Validator.check_schema(schema)
    valid = jsonschema.Draft202012Validator(schema).is_valid
    assert valid([{"name": "get_weather", "arguments": {"city": "Paris"}}])
    assert valid([{"name": "get_time", "arguments": {}}, {"name": "get_time", "arguments": {}}])
    assert not valid([])
    assert not valid([{"name": "get_weather", "arguments": {}}])  # city is required
    assert not valid([{"name": "other", "arguments": {}}])
    assert not valid([{"name": "get_time"}])


def test_required_schema_without_parallel_calls_allows_one():
    schema = forced_tool_schema(TOOLS, "required", parallel_tool_calls=False)
    call = {"name": "get_time", "arguments": {}}
    assert jsonschema.Draft202012Validator(schema).is_valid([call])
    assert not jsonschema.Draft202012Validator(schema).is_valid([call, call])
    assert "maxItems" not in forced_tool_schema(TOOLS, "required", parallel_tool_calls=True)


def test_parse_forced_output():
    named = parse_forced_output('{"city": "Oslo"}', "get_weather")
    assert [(c.name, c.arguments) for c in named] == [("get_weather", '{"city": "Oslo"}')]
    text = (
        '[{"name": "get_time", "arguments": {}}, '
        '{"name": "get_weather", "arguments": {"city": "A"}}]'
    )
    assert [c.name for c in parse_forced_output(text, None)] == ["get_time", "get_weather"]
    for cut in ['{"city": "Os', "[]", '[{"name": "x"}]', "[1]", "{}[", '"str"']:
        assert parse_forced_output(cut, None) is None
    assert parse_forced_output("[1]", "get_weather") is None


def test_forced_choice_goes_through_the_same_stage():
    parser = make_output_parser(None, tool_parser_for_request(None, TOOLS, NAMED))
    fields = collect(stream(parser, ['{"ci', 'ty": "Oslo"}']))
    assert fields["content"] is None
    assert fields["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Oslo"}',
    }
    cut = make_output_parser(None, tool_parser_for_request(None, TOOLS, "required"))
    assert collect(stream(cut, ['[{"name": "get_ti'])) == {"content": '[{"name": "get_ti'}


def test_tool_parser_for_request():
    assert tool_parser_for_request("hermes", TOOLS, "none") is None
    assert tool_parser_for_request("hermes", None, "auto") is None
    assert tool_parser_for_request("hermes", TOOLS, "auto") is not None
    with pytest.raises(APIError) as caught:
        tool_parser_for_request(None, TOOLS, "auto")
    assert caught.value.param == "tool_choice"


def test_unknown_parser_names_are_named():
    check_parser_names("qwen3", "hermes")
    known = "deepseek_v3, deepseek_v31, glm45, hermes, kimi_k2, llama3_json, mistral"
    with pytest.raises(ValueError, match=f"known: {known}, openai, pythonic, qwen3_coder"):
        check_parser_names(None, "hermes2")
    with pytest.raises(ValueError, match="unknown reasoning parser 'r1'"):
        make_output_parser("r1", None)
    assert isinstance(make_output_parser(), OutputParser)


def rejected(tools, tool_choice=None, parallel_tool_calls=None) -> APIError:
    with pytest.raises(APIError) as caught:
        validate_tools(tools, tool_choice, parallel_tool_calls)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("tools", "tool_choice"),
    [(TOOLS, NAMED), (TOOLS, "required"), (TOOLS, "auto"), (None, None), (None, "none")],
)
def test_valid_tools_pass_unchanged_and_force_a_valid_schema(tools, tool_choice):
    """What validate_tools accepts, forced_tool_schema relies on: the forced schema of an
    accepted request is itself a valid JSON Schema, and checking left the request as sent."""
    sent = copy.deepcopy(tools)
    validate_tools(tools, tool_choice)  # raises APIError if refused
    assert tools == sent
    schema = forced_tool_schema(tools, tool_choice)
    assert (schema is None) == (tool_choice not in (NAMED, "required"))
    if schema is not None:
        jsonschema.Draft202012Validator.check_schema(schema)


def test_tool_choice_naming_an_unknown_function():
    assert rejected(TOOLS, {"type": "function", "function": {"name": "nope"}}).param == (
        "tool_choice"
    )
    assert rejected(TOOLS, {"type": "function"}).param == "tool_choice"
    assert rejected(TOOLS, "sometimes").param == "tool_choice"


def test_required_without_tools():
    assert rejected(None, "required").param == "tool_choice"
    assert rejected([], NAMED).param == "tool_choice"
    assert rejected(None, None, parallel_tool_calls=False).param == "parallel_tool_calls"
    validate_tools(TOOLS, "auto", parallel_tool_calls=False)


def test_invalid_parameters_schema():
    bad = [{"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}]
    assert rejected(TOOLS + bad).param == "tools[2].function.parameters"
    not_object = [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]
    assert rejected(not_object).param == "tools[0].function.parameters"
    assert rejected([{"type": "function", "function": {"name": "f", "parameters": []}}]).param == (
        "tools[0].function.parameters"
    )


def test_parameters_schema_nested_too_deeply_to_check():
    """150 levels (a few KB) exhaust the recursion limit in the metaschema check."""
    schema: dict = {"type": "object"}
    for _ in range(150):
        schema = {"type": "object", "properties": {"a": schema}}
    deep = {"type": "function", "function": {"name": "f", "parameters": schema}}
    error = rejected([*TOOLS, deep])
    assert error.param == "tools[2].function.parameters"
    assert "nested too deeply" in error.message


def test_duplicate_and_malformed_function_names():
    assert rejected(TOOLS + [TOOLS[1]]).param == "tools[2].function.name"
    assert rejected([{"type": "function", "function": {"name": "a b"}}]).param == (
        "tools[0].function.name"
    )
    assert rejected([{"type": "retrieval"}]).param == "tools[0].type"
    assert rejected([{"type": "function"}]).param == "tools[0].function"


def test_tool_message_needs_tool_call_id():
    messages = [
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="tool", content="22 C", tool_call_id="call_1"),
        ChatMessage(role="tool", content="23 C"),
    ]
    with pytest.raises(APIError) as caught:
        validate_tool_messages(messages)
    assert caught.value.param == "messages.[2].tool_call_id"
    validate_tool_messages(messages[:2])
    with pytest.raises(APIError):
        validate_tool_messages([{"role": "tool", "content": "x"}])


TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "shared" / "chat_templates"


def template(name: str) -> str:
    path = TEMPLATE_DIR / f"{name}.json"
    if not path.exists():
        pytest.skip(f"needs the real chat templates in {TEMPLATE_DIR}")
    value = json.loads(path.read_text(encoding="utf-8"))["chat_template"]
    return value if isinstance(value, str) else " ".join(item["template"] for item in value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("qwen2.5-instruct", InferredParsers(None, "hermes")),
        ("qwen3", InferredParsers("qwen3", "hermes")),
        ("qwq-32b", InferredParsers("deepseek_r1", "hermes")),
        ("deepseek-r1-distill", InferredParsers("deepseek_r1", "deepseek_v3")),
        ("deepseek-r1", InferredParsers("deepseek_r1", "deepseek_v3")),
        ("gpt-oss", InferredParsers(None, "openai")),
        ("deepseek-v3.1", InferredParsers("deepseek_r1", "deepseek_v31")),
        ("hermes-3-llama-3.1", InferredParsers(None, "hermes")),
        ("mistral-7b-instruct-v0.3", InferredParsers(None, "mistral")),
        ("llama-3.1-instruct", InferredParsers(None, "llama3_json")),
        ("llama-3.2-instruct", InferredParsers(None, "llama3_json")),
        ("smollm2-instruct", InferredParsers(None, None)),
        ("gemma-3-it", InferredParsers(None, None)),
    ],
)
def test_parsers_inferred_from_real_templates(name, expected):
    assert infer_parsers(template(name)) == expected


@pytest.mark.parametrize(
    ("excerpt", "expected"),
    [
        # Each family's template writes an assistant's earlier calls in its own markup.
        ("{{- '<tool_call>\\n<function=' + tool_call.name + '>\\n' }}", "qwen3_coder"),
        ("{{ '<tool_call>' + tc.name }}{{ '<arg_key>' + k + '</arg_key>' }}", "glm45"),
        ("{{ '<|tool_calls_section_begin|>' }}{{ '<|tool_call_begin|>' + id }}", "kimi_k2"),
    ],
)
def test_parsers_inferred_from_template_markup(excerpt, expected):
    assert infer_parsers(excerpt).tools == expected
