"""Strict tools in ``auto`` mode: each format's structural tag (compiled by xgrammar, as
vLLM compiles it) accepts the calls its parser reads and refuses arguments off the
schema; formats without a trigger, and engines without structural tags, check the
parsed calls instead."""

from __future__ import annotations

import json

import pytest

from engines.base import SamplingParams
from engines.remote import SUPPORTED_SAMPLING as REMOTE_SAMPLING
from engines.vllm import SUPPORTED_SAMPLING as VLLM_SAMPLING
from engines.vllm import to_vllm_kwargs
from openai_frontend.chat_run import structured_output
from openai_frontend.errors import APIError
from openai_frontend.parsing.pipeline import parse_whole
from openai_frontend.parsing.registry import (
    call_grammar,
    make_output_parser,
    tool_parser_for_request,
)
from openai_frontend.parsing.strict import StrictSchemas, strict_tools_tag
from openai_frontend.schemas.chat import ChatCompletionRequest

SCHEMA = {
    "type": "object",
    "properties": {
        "unit": {"type": "string", "enum": ["c", "f"]},
        "days": {"type": "integer"},
    },
    "required": ["unit", "days"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "strict": True, "parameters": SCHEMA}},
    {"type": "function", "function": {"name": "echo", "parameters": {"type": "object"}}},
]

#: Per format: a reply holding one valid strict call, as the model writes it.
CALLS = {
    "hermes": 'Sure.<tool_call>\n{"name": "get_weather", "arguments": {"unit": "c", "days": 3}}'
    "\n</tool_call>",
    "glm45": "Sure.<tool_call>get_weather\n<arg_key>unit</arg_key><arg_value>c</arg_value>"
    "<arg_key>days</arg_key><arg_value>3</arg_value></tool_call>",
    "qwen3_coder": "Sure.<tool_call>\n<function=get_weather>\n<parameter=unit>c</parameter>"
    "<parameter=days>3</parameter>\n</function>\n</tool_call>",
    "deepseek_v31": "Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>"
    '{"unit": "c", "days": 3}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    "deepseek_v3": "Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>"
    'get_weather\n```json\n{"unit": "c", "days": 3}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    "kimi_k2": "Sure.<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0"
    '<|tool_call_argument_begin|>{"unit": "c", "days": 3}<|tool_call_end|>'
    "<|tool_calls_section_end|>",
    "mistral": 'Sure.[TOOL_CALLS]get_weather[ARGS]{"unit": "c", "days": 3}',
}
MISTRAL_LIST = (
    'Sure.[TOOL_CALLS] [{"name": "get_weather", "arguments": {"unit": "c", "days": 3}}, '
    '{"name": "echo", "arguments": {"x": "y"}}]'
)
#: Formats whose calls have no opening marker a grammar could trigger on.
UNTRIGGERED = {
    "llama3_json": '{"name": "get_weather", "parameters": {"unit": "kelvin", "days": 3}}',
    "pythonic": '[get_weather(unit="kelvin", days=3)]',
    "openai": "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
    '{"unit": "kelvin", "days": 3}<|call|>',
}


def off_schema(text: str) -> str:
    """The same reply with ``unit`` outside its enum."""
    return text.replace('"c"', '"kelvin"').replace(">c<", ">kelvin<")


def accepts(tag: dict, text: str) -> bool:
    xgrammar = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string

    grammar = xgrammar.Grammar.from_structural_tag(json.dumps(tag))
    return _is_grammar_accept_string(grammar, text)


def calls_of(parser_name: str, text: str, strict: StrictSchemas | None = None) -> list:
    tools = tool_parser_for_request(parser_name, TOOLS, "auto", strict)
    return parse_whole(make_output_parser(None, tools), text).get("tool_calls", [])


@pytest.mark.parametrize(("parser_name", "text"), [*CALLS.items(), ("mistral", MISTRAL_LIST)])
def test_tag_holds_strict_calls_to_the_schema(parser_name: str, text: str) -> None:
    tag = strict_tools_tag(call_grammar(parser_name), TOOLS, None)
    assert tag is not None
    assert accepts(tag, text)
    assert not accepts(tag, off_schema(text))
    assert accepts(tag, "Just text, no call.")
    call = calls_of(parser_name, text)[0]["function"]
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"unit": "c", "days": 3}


def test_non_strict_tools_stay_callable_with_any_object() -> None:
    tag = strict_tools_tag(call_grammar("hermes"), TOOLS, None)
    free = '<tool_call>\n{"name": "echo", "arguments": {"anything": [1, 2]}}\n</tool_call>'
    assert accepts(tag, free)
    undeclared = '<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>'
    assert not accepts(tag, undeclared)


def test_parallel_tool_calls_false_allows_one_call() -> None:
    call = CALLS["hermes"].removeprefix("Sure.")
    assert accepts(strict_tools_tag(call_grammar("hermes"), TOOLS, None), call + call)
    assert not accepts(strict_tools_tag(call_grammar("hermes"), TOOLS, False), call + call)


def test_no_tag_without_strict_tools_or_trigger() -> None:
    loose = [{"type": "function", "function": {"name": "f", "parameters": SCHEMA}}]
    assert strict_tools_tag(call_grammar("hermes"), loose, None) is None
    for parser_name in UNTRIGGERED:
        assert strict_tools_tag(call_grammar(parser_name), TOOLS, None) is None


@pytest.mark.parametrize("parser_name", [*CALLS, *UNTRIGGERED])
def test_checked_strict_calls_off_schema_are_content(parser_name: str) -> None:
    text = UNTRIGGERED.get(parser_name) or off_schema(CALLS[parser_name])
    strict = StrictSchemas.of(TOOLS)
    assert calls_of(parser_name, text, strict) == []
    assert calls_of(parser_name, text)  # unchecked, the same markup is a call
    valid = text.replace('"kelvin"', '"c"').replace(">kelvin<", ">c<")
    assert calls_of(parser_name, valid, strict)


def test_engines_take_the_tag_or_say_they_cannot() -> None:
    tag = strict_tools_tag(call_grammar("hermes"), TOOLS, None)
    kwargs = to_vllm_kwargs(SamplingParams(max_tokens=8, structural_tag=tag))
    assert json.loads(kwargs["structured_outputs"]["structural_tag"]) == tag
    assert "structural_tag" in VLLM_SAMPLING
    assert "structural_tag" not in REMOTE_SAMPLING


def json_schema_request(**spec) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_schema", "json_schema": spec},
    )


@pytest.mark.parametrize(
    ("spec", "param"),
    [
        ({"schema": {"type": "object"}}, "response_format.json_schema.name"),
        ({"name": "a b", "schema": {}}, "response_format.json_schema.name"),
        ({"name": "x" * 65, "schema": {}}, "response_format.json_schema.name"),
        ({"name": "ok", "strict": "yes", "schema": {}}, "response_format.json_schema.strict"),
    ],
)
def test_response_format_name_and_strict_are_checked(spec: dict, param: str) -> None:
    with pytest.raises(APIError) as error:
        structured_output(json_schema_request(**spec))
    assert error.value.param == param


@pytest.mark.parametrize("strict", [True, False, None])
def test_response_format_schema_constrains_strict_or_not(strict: bool | None) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    constraint = structured_output(json_schema_request(name="A-b_1", strict=strict, schema=schema))
    assert constraint.json_schema == schema
