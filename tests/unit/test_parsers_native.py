"""The native formats (DeepSeek V3 / V3.1, Qwen3-Coder, GLM-4.5, Kimi-K2): the same
split-invariance properties as tests/unit/test_parsers_stream.py, and each family's
documented shape.

Replies are rendered from known calls the way each family's template writes them (a
string argument as is, any other value as JSON), and parsed with the request's tools
declared, whose schemas type each string argument ``string``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from parsers_support import collect, splits, stream, without_ids
from test_parsers_stream import arguments, identifiers, reasonings, separators, squeeze

from openai_frontend.parsing.pipeline import parse_whole
from openai_frontend.parsing.registry import make_output_parser, tool_parser_for_request

DS_CALLS, DS_CALLS_END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"
DS_CALL, DS_SEP, DS_CALL_END = "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>"
KIMI_SECTION, KIMI_SECTION_END = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"
KIMI_CALL, KIMI_ARGS, KIMI_CALL_END = (
    "<|tool_call_begin|>",
    "<|tool_call_argument_begin|>",
    "<|tool_call_end|>",
)
MARKUP = (
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    DS_CALLS,
    DS_CALLS_END,
    KIMI_SECTION,
    KIMI_SECTION_END,
)
#: Content text: markup characters and marker prefixes, never a whole marker.
texts = (
    st.lists(
        st.sampled_from(
            [*"ab <>/[]{}|\n;", "<tool", "<think", "</th", "<｜tool▁calls", "<|tool_calls_sec", "é"]
        ),
        max_size=10,
    )
    .map("".join)
    .filter(lambda text: not any(marker in text for marker in MARKUP))
)
unique_calls = st.lists(
    st.tuples(identifiers, arguments), min_size=1, max_size=3, unique_by=lambda call: call[0]
)


def as_text(value: Any) -> str:
    """How the templates write one argument: a string as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def deepseek_v31(draw, calls) -> str:
    body = "".join(
        f"{DS_CALL}{name}{DS_SEP}{json.dumps(args)}{DS_CALL_END}" for name, args in calls
    )
    return f"{DS_CALLS}{body}{DS_CALLS_END}"


def deepseek_v3(draw, calls) -> str:
    body = "".join(
        f"{DS_CALL}function{DS_SEP}{name}\n```json\n{json.dumps(args)}\n```{DS_CALL_END}"
        f"{draw(separators)}"
        for name, args in calls
    )
    return f"{DS_CALLS}{body}{DS_CALLS_END}"


def qwen3_coder(draw, calls) -> str:
    blocks = []
    for name, args in calls:
        params = "".join(f"<parameter={k}>\n{as_text(v)}\n</parameter>\n" for k, v in args.items())
        blocks.append(f"<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>")
    return draw(separators).join(blocks)


def glm45(draw, calls) -> str:
    blocks = []
    for name, args in calls:
        pairs = "".join(
            f"<arg_key>{k}</arg_key>\n<arg_value>{as_text(v)}</arg_value>\n"
            for k, v in args.items()
        )
        blocks.append(f"<tool_call>{name}\n{pairs}</tool_call>")
    return draw(separators).join(blocks)


def kimi_k2(draw, calls) -> str:
    body = "".join(
        f"{KIMI_CALL}functions.{name}:{index}{KIMI_ARGS}{json.dumps(args)}{KIMI_CALL_END}"
        for index, (name, args) in enumerate(calls)
    )
    return f"{KIMI_SECTION}{body}{KIMI_SECTION_END}"


FORMATS: dict[str, Callable] = {
    "deepseek_v3": deepseek_v3,
    "deepseek_v31": deepseek_v31,
    "qwen3_coder": qwen3_coder,
    "glm45": glm45,
    "kimi_k2": kimi_k2,
}


def tools_for(calls: list[tuple[str, dict]]) -> list[dict]:
    """The request's tools: each string argument typed ``string``."""
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "parameters": {
                    "type": "object",
                    "properties": {
                        key: {"type": "string"}
                        for key, value in args.items()
                        if isinstance(value, str)
                    },
                },
            },
        }
        for name, args in calls
    ]


def parser(reasoning: str | None, format_name: str, tools: list[dict]):
    return make_output_parser(reasoning, tool_parser_for_request(format_name, tools, "auto"))


@st.composite
def replies(draw):
    """(reasoning parser, format, tools, reply text, reasoning, content, calls)."""
    format_name = draw(st.sampled_from(sorted(FORMATS)))
    calls = draw(unique_calls)
    content = draw(texts)
    answer = content + FORMATS[format_name](draw, calls)
    reasoning_parser = draw(st.sampled_from([None, "qwen3", "deepseek_r1"]))
    thought = draw(reasonings) if reasoning_parser else ""
    if reasoning_parser == "qwen3":
        answer = f"<think>{thought}</think>{draw(separators)}{answer}"
    elif reasoning_parser == "deepseek_r1":
        answer = f"{draw(st.sampled_from(['', '<think>']))}{thought}</think>\n\n{answer}"
    return reasoning_parser, format_name, tools_for(calls), answer, thought, content, calls


@settings(max_examples=600, deadline=None)
@given(data=st.data(), reply=replies())
def test_any_split_parses_like_the_whole_reply(data, reply):
    reasoning_parser, format_name, tools, text, thought, content, calls = reply
    expected = parse_whole(parser(reasoning_parser, format_name, tools), text)
    assert [
        (call["function"]["name"], json.loads(call["function"]["arguments"]))
        for call in expected.get("tool_calls", [])
    ] == [(name, args) for name, args in calls]
    assert expected.get("reasoning_content", "") == thought
    assert squeeze(expected["content"]) == squeeze(content)

    pieces = data.draw(splits(text))
    deltas = stream(parser(reasoning_parser, format_name, tools), pieces)
    for delta in deltas:
        assert not any(marker in delta.content for marker in MARKUP)
    assert without_ids(collect(deltas)) == without_ids(expected)


#: Markup-rich fragments, valid and broken, to throw at every native parser.
FRAGMENTS = [
    *MARKUP,
    DS_CALL,
    DS_SEP,
    DS_CALL_END,
    "function",
    "```json\n",
    "```",
    KIMI_CALL,
    KIMI_ARGS,
    KIMI_CALL_END,
    "functions.f:0",
    "<function=f>",
    "</function>",
    "<parameter=a>",
    "</parameter>",
    "<arg_key>a</arg_key>",
    "<arg_value>",
    "</arg_value>",
    "f",
    '{"a": 1}',
    "{",
    "}",
    " ",
    "\n",
    "<",
    "x",
]
anything = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join)
DECLARED = [{"type": "function", "function": {"name": "f", "parameters": {}}}]


@settings(max_examples=800, deadline=None)
@given(
    data=st.data(),
    text=anything,
    reasoning_parser=st.sampled_from([None, "qwen3"]),
    format_name=st.sampled_from(sorted(FORMATS)),
)
def test_any_text_streams_like_the_whole_and_loses_nothing(
    data, text, reasoning_parser, format_name
):
    expected = parse_whole(parser(reasoning_parser, format_name, DECLARED), text)
    pieces = data.draw(splits(text))
    streamed = collect(stream(parser(reasoning_parser, format_name, DECLARED), pieces))
    assert without_ids(streamed) == without_ids(expected)
    if not expected.get("tool_calls"):
        kept = squeeze(expected.get("reasoning_content", "") + (expected["content"] or ""))
        assert kept in {squeeze(text), squeeze(text.replace("<think>", "", 1))} | {
            squeeze(text.replace("<think>", "", 1).replace("</think>", "", 1)),
            squeeze(text.replace("</think>", "", 1)),
        }


# -- each family's documented shape ------------------------------------------------------

WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
    }
]


def calls_in(format_name: str, text: str) -> tuple[str | None, list[tuple[str, Any]]]:
    fields = parse_whole(parser(None, format_name, WEATHER), text)
    calls = [
        (call["function"]["name"], json.loads(call["function"]["arguments"]))
        for call in fields.get("tool_calls", [])
    ]
    return fields["content"], calls


def test_deepseek_v31_text_then_a_call():
    text = (
        f"Checking.{DS_CALLS}{DS_CALL}get_weather{DS_SEP}"
        f'{{"city": "Paris", "days": 2}}{DS_CALL_END}{DS_CALLS_END}'
    )
    assert calls_in("deepseek_v31", text) == (
        "Checking.",
        [("get_weather", {"city": "Paris", "days": 2})],
    )


def test_deepseek_v3_fenced_arguments():
    text = (
        f"{DS_CALLS}{DS_CALL}function{DS_SEP}get_weather\n```json\n"
        f'{{"city": "Oslo"}}\n```{DS_CALL_END}{DS_CALLS_END}'
    )
    assert calls_in("deepseek_v3", text) == (None, [("get_weather", {"city": "Oslo"})])
    v31 = text.replace("function" + DS_SEP + "get_weather\n```json\n", "get_weather" + DS_SEP)
    assert calls_in("deepseek_v3", v31.replace("\n```", ""))[1] == []  # not V3's shape


def test_qwen3_coder_values_follow_the_schema():
    text = (
        "<tool_call>\n<function=get_weather>\n<parameter=city>\n007\n</parameter>\n"
        "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>"
    )
    assert calls_in("qwen3_coder", text) == (None, [("get_weather", {"city": "007", "days": 3})])


def test_glm45_pairs():
    text = (
        "Sure.<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Rome</arg_value>\n"
        "<arg_key>days</arg_key>\n<arg_value>5</arg_value>\n</tool_call>"
    )
    assert calls_in("glm45", text) == ("Sure.", [("get_weather", {"city": "Rome", "days": 5})])


def test_kimi_k2_section():
    text = (
        f"{KIMI_SECTION}{KIMI_CALL}functions.get_weather:0{KIMI_ARGS}"
        f'{{"city": "Lima"}}{KIMI_CALL_END}{KIMI_SECTION_END}'
    )
    assert calls_in("kimi_k2", text) == (None, [("get_weather", {"city": "Lima"})])


def test_broken_or_undeclared_markup_stays_content():
    for format_name, text in [
        ("deepseek_v31", f"{DS_CALLS}{DS_CALL}rm_rf{DS_SEP}{{}}{DS_CALL_END}{DS_CALLS_END}"),
        (
            "deepseek_v31",
            f"{DS_CALLS}{DS_CALL}get_weather{DS_SEP}{{oops{DS_CALL_END}{DS_CALLS_END}",
        ),
        ("qwen3_coder", "<tool_call>\n<function=rm_rf>\n</function>\n</tool_call>"),
        ("qwen3_coder", "<tool_call>\n<function=get_weather>\nhello\n</function>\n</tool_call>"),
        ("glm45", "<tool_call>rm_rf\n</tool_call>"),
        ("glm45", "<tool_call>get_weather\n<arg_key>city</arg_key>\n</tool_call>"),
        (
            "kimi_k2",
            f"{KIMI_SECTION}{KIMI_CALL}functions.rm_rf:0{KIMI_ARGS}{{}}"
            f"{KIMI_CALL_END}{KIMI_SECTION_END}",
        ),
    ]:
        assert calls_in(format_name, text) == (text, []), (format_name, text)


# -- gpt-oss harmony ---------------------------------------------------------------------


@st.composite
def harmony_replies(draw):
    """(reply text, reasoning, content, calls): analysis, then a final answer or calls."""
    thought, content = draw(texts), draw(texts)
    calls = draw(st.lists(st.tuples(identifiers, arguments), max_size=2, unique_by=lambda c: c[0]))
    messages = [f"<|channel|>analysis<|message|>{thought}<|end|>"] if thought else []
    if content:
        messages.append(f"<|start|>assistant<|channel|>final<|message|>{content}<|end|>")
    for index, (name, args) in enumerate(calls):
        header = draw(
            st.sampled_from(
                [
                    f"<|channel|>commentary to=functions.{name} <|constrain|>json",
                    f" to=functions.{name}<|channel|>commentary json",
                ]
            )
        )
        end = "" if index == len(calls) - 1 else "<|call|>"
        messages.append(f"<|start|>assistant{header}<|message|>{json.dumps(args)}{end}")
    text = "".join(messages)
    if text.startswith("<|start|>assistant"):
        text = text[len("<|start|>assistant") :]  # the generation prompt wrote it
    return text, thought, content, calls


@settings(max_examples=600, deadline=None)
@given(data=st.data(), reply=harmony_replies())
def test_harmony_any_split_parses_like_the_whole_reply(data, reply):
    text, thought, content, calls = reply
    tools = tools_for(calls)
    expected = parse_whole(parser(None, "openai", tools), text)
    assert [
        (call["function"]["name"], json.loads(call["function"]["arguments"]))
        for call in expected.get("tool_calls", [])
    ] == [(name, args) for name, args in calls]
    assert expected.get("reasoning_content", "") == thought
    assert (expected["content"] or "") == content

    deltas = stream(parser(None, "openai", tools), data.draw(splits(text)))
    for delta in deltas:  # each part on its own: "<" + "|" across the two is no marker
        assert "<|" not in delta.content or "<|" in content
        assert "<|" not in delta.reasoning or "<|" in thought
    assert without_ids(collect(deltas)) == without_ids(expected)


HARMONY_FRAGMENTS = [
    "<|channel|>",
    "analysis",
    "final",
    "commentary",
    " to=functions.f",
    " to=functions.g",
    "<|constrain|>json",
    "<|message|>",
    "<|end|>",
    "<|call|>",
    "<|return|>",
    "<|start|>",
    "assistant",
    '{"a": 1}',
    "{",
    " ",
    "x",
    "<|",
]


@settings(max_examples=800, deadline=None)
@given(data=st.data(), text=st.lists(st.sampled_from(HARMONY_FRAGMENTS), max_size=16).map("".join))
def test_harmony_any_text_streams_like_the_whole(data, text):
    expected = parse_whole(parser(None, "openai", DECLARED), text)
    pieces = data.draw(splits(text))
    assert without_ids(collect(stream(parser(None, "openai", DECLARED), pieces))) == without_ids(
        expected
    )


def test_harmony_reasoning_then_a_call():
    text = (
        "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant"
        "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
        '{"city": "Paris"}'
    )
    fields = parse_whole(parser(None, "openai", WEATHER), text)
    assert fields["reasoning_content"] == "Need the weather."
    assert fields["content"] is None
    [call] = fields["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


def test_harmony_without_tools_still_splits_reasoning_from_the_answer():
    text = (
        "<|channel|>analysis<|message|>Easy.<|end|><|start|>assistant<|channel|>final<|message|>4"
    )
    fields = parse_whole(
        make_output_parser(None, tool_parser_for_request("openai", None, None)), text
    )
    assert fields == {"content": "4", "reasoning_content": "Easy."}


def test_harmony_undeclared_or_broken_calls_and_plain_text_stay_content():
    undeclared = "<|channel|>commentary to=functions.rm_rf json<|message|>{}"
    assert calls_in("openai", undeclared) == (undeclared, [])
    broken = "<|channel|>commentary to=functions.get_weather json<|message|>{oops"
    assert calls_in("openai", broken) == (broken, [])
    plain = "Just text, " * 30
    assert calls_in("openai", plain) == (plain, [])
