"""Forced choices on reasoning models, without an engine: where the grammar starts
(openai_frontend/reasoning_constraint.py), what the vLLM engine is told
(engines/vllm.py, engines/vllm_reasoning_gate.py), and how the reply is split back
into reasoning and the forced call or JSON (the output parser).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_chat_tools import config, plan, request, resolver

from engines.base import GenerateRequest, SamplingParams, StructuredOutput
from engines.vllm import VLLMEngine, reasoning_gate
from openai_frontend.chat_tools import _plan_and_render_now
from openai_frontend.default_model import ensure_default_model
from openai_frontend.errors import APIError
from openai_frontend.parsing.forced import ForcedToolParser
from openai_frontend.parsing.pipeline import parse_whole
from openai_frontend.parsing.registry import make_output_parser
from openai_frontend.reasoning_constraint import reasoning_start

NAMED = {"type": "function", "function": {"name": "get_weather"}}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
JSON_FORMAT = {"type": "json_object"}


# -- where the grammar starts ---------------------------------------------------------


@pytest.mark.parametrize(
    ("parser", "prompt_end", "start"),
    [
        ("qwen3", "<|im_start|>assistant\n", "may_open"),
        ("qwen3", "<|im_start|>assistant\n<think>\n", "inside"),
        ("qwen3", "<|im_start|>assistant\n<think>\n\n</think>\n\n", None),
        ("deepseek_r1", "<｜Assistant｜>", "inside"),
        ("deepseek_r1", "<｜Assistant｜><think>\n", "inside"),
        ("deepseek_r1", "<｜Assistant｜></think>", None),
        (None, "<|im_start|>assistant\n", None),
    ],
)
def test_the_gateways_reasoning_parser_says_where_the_reply_starts(parser, prompt_end, start):
    assert reasoning_start(parser, "<|im_start|>user\nhi<|im_end|>\n" + prompt_end) == start


@pytest.mark.parametrize(
    "fields", [{"tools": TOOLS, "tool_choice": NAMED}, {"tools": TOOLS, "tool_choice": "required"}]
)
def test_a_forced_choice_waits_for_the_reasoning_and_auto_does_not(fields):
    server = config(reasoning_parser="qwen3", tool_call_parser="hermes")
    forced, prompt = _plan_and_render_now(request(**fields), resolver("qwen3"), server)
    assert forced.constraint_after_reasoning(prompt) == "may_open"
    auto = prepare("qwen3", server, tools=TOOLS)
    assert auto.constraint_after_reasoning(prompt) is None
    no_reasoning = prepare("smollm2-instruct", config(tool_call_parser="hermes"), **fields)
    assert no_reasoning.constraint_after_reasoning(prompt) is None


def test_a_json_response_format_waits_for_the_reasoning_a_prompt_opened():
    server = config(reasoning_parser="deepseek_r1")
    body = request(response_format=JSON_FORMAT)
    chosen, prompt = _plan_and_render_now(body, resolver("deepseek-r1"), server)
    assert chosen.constraint_after_reasoning(prompt) == "inside"


def prepare(family: str, server, **fields):
    return plan(family, server, **fields)


# -- an engine that cannot wait: thinking off, else a 400 ------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": TOOLS, "tool_choice": NAMED}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
        ({"response_format": JSON_FORMAT}, "response_format"),
    ],
)
def test_without_the_gate_thinking_is_turned_off_or_the_request_refused(fields, param):
    server = config(reasoning_parser="qwen3", tool_call_parser="hermes")
    body = request(**fields)
    chosen, prompt = _plan_and_render_now(body, resolver("qwen3"), server, False)
    assert prompt.endswith("<think>\n\n</think>\n\n")
    assert chosen.constraint_after_reasoning(prompt) is None
    asked_on = request(**fields, chat_template_kwargs={"enable_thinking": True})
    with pytest.raises(APIError) as error:
        _plan_and_render_now(asked_on, resolver("qwen3"), server, False)
    assert error.value.param == param
    r1 = config(reasoning_parser="deepseek_r1", tool_call_parser="hermes")
    with pytest.raises(APIError) as error:  # DeepSeek-R1's template has no switch
        _plan_and_render_now(body, resolver("deepseek-r1"), r1, False)
    assert error.value.param == param


def test_a_plain_request_is_rendered_as_asked_without_the_gate():
    server = config(reasoning_parser="qwen3", tool_call_parser="hermes")
    _, gated = _plan_and_render_now(request(tools=TOOLS), resolver("qwen3"), server, True)
    _, ungated = _plan_and_render_now(request(tools=TOOLS), resolver("qwen3"), server, False)
    assert gated == ungated and not gated.endswith("</think>\n\n")


# -- what the vLLM engine is told -----------------------------------------------------


def generate_request(**sampling) -> GenerateRequest:
    return GenerateRequest("r", [1, 2, 3], SamplingParams(max_tokens=8, **sampling))


def test_vllm_places_each_structured_requests_grammar_explicitly():
    assert reasoning_gate(generate_request()) == {}
    json_object = StructuredOutput(json_object=True)
    assert reasoning_gate(generate_request(structured_output=json_object)) == {
        "reasoning_ended": True
    }
    strict_tools = generate_request(structural_tag={"type": "structural_tag", "format": {}})
    assert reasoning_gate(strict_tools) == {"reasoning_ended": True}, "else it never applies"
    waiting = generate_request(structured_output=json_object, constraint_after_reasoning="inside")
    assert reasoning_gate(waiting) == {
        "reasoning_ended": False,
        "reasoning_parser_kwargs": {"prompt_tokens": 3, "may_open": False},
    }


def test_the_vllm_engine_registers_the_gate_and_keeps_the_clients_structured_config():
    engine = VLLMEngine(Path("m"), "m")
    config_fields = engine.engine_arguments()["structured_outputs_config"]
    assert config_fields["reasoning_parser"] == "openai_frontend_think"
    assert Path(config_fields["reasoning_parser_plugin"]).is_file()
    own = {"structured_outputs_config": {"backend": "guidance"}}
    merged = VLLMEngine(Path("m"), "m", engine_args=own).engine_arguments()
    assert merged["structured_outputs_config"] == {**config_fields, "backend": "guidance"}
    pooling = VLLMEngine(Path("m"), "m", runner="pooling").engine_arguments()
    assert "structured_outputs_config" not in pooling


# -- the gate, with the default model's tokenizer (``</think>`` is three tokens) -------


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_default_model())


def gate(tokenizer, prompt: list[int], may_open: bool):
    from vllm.reasoning import ReasoningParserManager

    from engines.vllm_reasoning_gate import NAME

    parser_class = ReasoningParserManager.get_reasoning_parser(NAME)
    return parser_class(tokenizer=tokenizer, prompt_tokens=len(prompt), may_open=may_open)


def ends_at(tokenizer, reply: str, may_open: bool) -> str | None:
    """The reply's text up to the token after which the gate says the reasoning is over."""
    prompt = tokenizer.encode("<think>\nold</think> <|im_start|>assistant\n")
    ids = tokenizer.encode(reply)
    checker = gate(tokenizer, prompt, may_open)
    for count in range(len(ids) + 1):
        if checker.is_reasoning_end_streaming(prompt + ids[:count], ids[count - 1 : count]):
            return tokenizer.decode(ids[:count])
    return None


def test_the_gate_ends_the_reasoning_at_the_last_token_of_a_split_close_tag(tokenizer):
    reply = '<think>Paris is in France.</think>{"city":"Paris"}'
    assert len(tokenizer.encode("</think>")) > 1  # why vLLM's own parsers refuse it
    assert ends_at(tokenizer, reply, may_open=False) == "<think>Paris is in France.</think>"
    assert ends_at(tokenizer, reply, may_open=True) == "<think>Paris is in France.</think>"
    assert ends_at(tokenizer, "still thinking", may_open=False) is None


def test_a_reply_that_never_opens_think_has_no_reasoning_to_wait_for(tokenizer):
    assert ends_at(tokenizer, "Sure, Paris.", may_open=True) == "Sure"
    assert ends_at(tokenizer, "Sure, Paris.", may_open=False) is None


# -- the reply split back: reasoning, then the forced call or JSON ---------------------


def parsed_in_pieces(parser_name: str, tools, text: str, prompt: str = "") -> dict:
    """The reply fed in pieces of three characters, as tokens arrive."""
    from openai_frontend.parsing.pipeline import MessageBuilder

    parser = make_output_parser(parser_name, tools, prompt)
    message = MessageBuilder()
    for start in range(0, len(text), 3):
        message.add(parser.feed(text[start : start + 3]))
    message.add(parser.finish())
    return message.fields()


@pytest.mark.parametrize("parser_name", ["deepseek_r1", "qwen3"])
def test_reasoning_then_the_forced_arguments_become_the_call(parser_name):
    text = '<think>The user wants Paris.</think>\n\n{"city": "Paris"}'
    for fields in (
        parse_whole(make_output_parser(parser_name, ForcedToolParser("get_weather")), text),
        parsed_in_pieces(parser_name, ForcedToolParser("get_weather"), text),
    ):
        assert fields["reasoning_content"] == "The user wants Paris."
        assert fields["content"] is None
        (call,) = fields["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_reasoning_then_a_required_array_becomes_the_calls():
    text = 'Paris.</think>[{"name": "get_weather", "arguments": {"city": "Paris"}}]'
    fields = parsed_in_pieces("deepseek_r1", ForcedToolParser(None), text)
    assert fields["reasoning_content"] == "Paris."
    assert [call["function"]["name"] for call in fields["tool_calls"]] == ["get_weather"]


def test_reasoning_then_json_content():
    fields = parsed_in_pieces("deepseek_r1", None, 'Hmm.</think>\n{"city": "Paris"}')
    assert fields == {"content": '{"city": "Paris"}', "reasoning_content": "Hmm."}


def test_the_issues_reply_is_the_call_when_thinking_was_turned_off():
    """The issue's reproduction: a reply that is only the forced arguments. With thinking
    off the prompt closed the reasoning, and the reply is the call."""
    closed = "<｜Assistant｜><think>\n\n</think>\n\n"
    parser = make_output_parser("deepseek_r1", ForcedToolParser("get_weather"), closed)
    fields = parse_whole(parser, '{"city":"Paris"}')
    assert json.loads(fields["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert "reasoning_content" not in fields
