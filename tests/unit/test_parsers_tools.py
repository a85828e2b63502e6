"""Tool-call parsers on the formats the model families document."""

from __future__ import annotations

import json
import sys

import pytest
from parsers_support import collect, stream, streamed, whole, without_ids

from engines.base import Delta
from openai_frontend.parsing.base import ParsedCall
from openai_frontend.parsing.pipeline import chat_finish_reason, parse_whole
from openai_frontend.parsing.registry import make_output_parser, tool_parser_for_request


def calls(fields: dict) -> list[tuple[str, dict]]:
    return [
        (call["function"]["name"], json.loads(call["function"]["arguments"]))
        for call in fields.get("tool_calls", [])
    ]


# Qwen2.5's function-calling guide: two calls in a row, nothing else.
QWEN_TWO_CALLS = (
    '<tool_call>\n{"name": "get_current_temperature", "arguments": {"location": '
    '"San Francisco, CA, USA"}}\n</tool_call>\n<tool_call>\n{"name": '
    '"get_temperature_date", "arguments": {"location": "San Francisco, CA, USA", '
    '"date": "2024-10-01"}}\n</tool_call>'
)
SF = "San Francisco, CA, USA"


def test_hermes_two_calls():
    fields = whole(None, "hermes", QWEN_TWO_CALLS)
    assert fields["content"] is None
    assert calls(fields) == [
        ("get_current_temperature", {"location": SF}),
        ("get_temperature_date", {"location": SF, "date": "2024-10-01"}),
    ]
    assert fields["tool_calls"][0]["function"]["arguments"] == json.dumps({"location": SF})
    assert [call["id"][:5] for call in fields["tool_calls"]] == ["call_", "call_"]
    assert fields["tool_calls"][0]["id"] != fields["tool_calls"][1]["id"]


def test_hermes_text_before_the_call_is_content():
    fields = whole(None, "hermes", 'Let me check.\n<tool_call>\n{"name": "f", "arguments": {}}\n')
    assert fields == {"content": 'Let me check.\n<tool_call>\n{"name": "f", "arguments": {}}\n'}
    fields = whole(
        None, "hermes", 'Let me check.\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'
    )
    assert fields["content"] == "Let me check.\n"
    assert calls(fields) == [("f", {})]


def test_hermes_invalid_block_is_returned_as_content():
    text = "<tool_call>\n{name: f}\n</tool_call> and more"
    assert whole(None, "hermes", text) == {"content": text}


def test_hermes_cut_by_max_tokens_keeps_the_text_and_says_length():
    parser = make_output_parser(None, "hermes")
    text = 'Sure.<tool_call>\n{"name": "get_weather", "argu'
    out = parser.parse(Delta(text, [1], 20, "length"))
    assert out.content == text and not out.tool_calls
    assert chat_finish_reason("length", parser.called_tools) == "length"


def test_hermes_html_in_content_is_released():
    parser = make_output_parser(None, "hermes")
    assert [d.content for d in stream(parser, ["a <", "b> c <tool", "s>"])] == [
        "a ",
        "<b> c ",
        "<tools>",
    ]


def test_call_streams_as_header_then_arguments():
    parser = make_output_parser(None, "hermes")
    block = '<tool_call>{"name": "f", "arguments": {"x": [1, 2]}}'
    deltas = stream(parser, [block, "</tool_call>"])
    pieces = [piece.to_openai() for delta in deltas for piece in delta.tool_calls]
    call_id = pieces[0]["id"]
    assert call_id.startswith("call_")
    assert pieces == [
        {"index": 0, "id": call_id, "type": "function", "function": {"name": "f", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"x": [1, 2]}'}},
    ]
    assert chat_finish_reason("stop", parser.called_tools) == "tool_calls"
    assert chat_finish_reason("stop", False) == "stop"


def test_a_chunk_carries_one_entry_per_call_index():
    parser = make_output_parser(None, "hermes")
    text = '<tool_call>{"name": "f", "arguments": {"x": 1}}</tool_call><tool_call>{"name": "g"}'
    [delta] = stream(parser, [text + "</tool_call>"])
    entries = delta.to_openai()["tool_calls"]
    assert [entry["index"] for entry in entries] == [0, 1]
    assert [entry["function"] for entry in entries] == [
        {"name": "f", "arguments": '{"x": 1}'},
        {"name": "g", "arguments": "{}"},
    ]
    assert entries[0]["id"].startswith("call_") and entries[0]["type"] == "function"


def test_llama3_json_single_call():
    text = '{"name": "get_weather", "parameters": {"location": "Paris", "unit": "celsius"}}'
    fields = whole(None, "llama3_json", text)
    assert fields["content"] is None
    assert calls(fields) == [("get_weather", {"location": "Paris", "unit": "celsius"})]


def test_llama3_json_python_tag_and_several_calls():
    text = (
        '<|python_tag|>{"name": "a", "parameters": {"x": 1}}; '
        '{"name": "b", "parameters": {"y": "z"}}'
    )
    assert calls(whole(None, "llama3_json", text)) == [("a", {"x": 1}), ("b", {"y": "z"})]


def test_llama3_json_other_replies_are_content():
    for text in ['{"answer": 42}', "The weather is fine.", '  Sure: {"name": "a"}', "{broken"]:
        assert whole(None, "llama3_json", text) == {"content": text}


def test_mistral_v03_list():
    text = (
        '[TOOL_CALLS] [{"name": "get_current_weather", "arguments": '
        '{"location": "Paris, France", "format": "celsius"}}, {"name": "g", "arguments": {}}]'
    )
    fields = whole(None, "mistral", text)
    assert fields["content"] is None
    assert calls(fields) == [
        ("get_current_weather", {"location": "Paris, France", "format": "celsius"}),
        ("g", {}),
    ]


def test_mistral_v11_named_calls():
    text = '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}'
    expected = [("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert calls(whole(None, "mistral", text)) == expected


def test_mistral_marker_without_calls_is_content():
    for text in ["[TOOL_CALLS] sorry, no.", "[TOOL_CALLS] [1, 2]", "[TOOL_CALLS] [{"]:
        assert whole(None, "mistral", text) == {"content": text}


def test_pythonic_calls():
    text = '[get_weather(city="San Francisco", metric="celsius"), get_time(tz="PST", ok=True)]'
    fields = whole(None, "pythonic", text)
    assert fields["content"] is None
    assert calls(fields) == [
        ("get_weather", {"city": "San Francisco", "metric": "celsius"}),
        ("get_time", {"tz": "PST", "ok": True}),
    ]


def test_pythonic_nested_literals_and_a_bracket_in_a_string():
    text = '[f(a=[1, [2]], b={"k": (3, None)}, c="x]y")]'
    assert calls(whole(None, "pythonic", text)) == [
        ("f", {"a": [1, [2]], "b": {"k": [3, None]}, "c": "x]y"})
    ]


@pytest.mark.parametrize(
    "text",
    [
        "[1] is a footnote.",
        "[f(a=b)]",  # not a literal
        "[f(1)]",  # positional
        "[f(**kw)]",
        "[f(a=float('nan'))]",
        "[f(a=b'x')]",  # not JSON
        "[f(a=1)",  # cut
        "Plain text [f(a=1)]",
    ],
)
def test_pythonic_non_calls_are_content(text):
    assert whole(None, "pythonic", text) == {"content": text}


def test_text_after_pythonic_calls_is_content():
    fields = whole(None, "pythonic", "[f(a=1)]\n\nDone.")
    assert calls(fields) == [("f", {"a": 1})]
    assert fields["content"] == "Done."


def test_reasoning_then_calls():
    text = (
        "<think>\nI should call f.\n</think>\n\n"
        '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>'
    )
    fields = whole("qwen3", "hermes", text)
    assert fields["reasoning_content"] == "\nI should call f.\n"
    assert fields["content"] is None and calls(fields) == [("f", {})]
    pieces = [text[i : i + 2] for i in range(0, len(text), 2)]
    assert without_ids(streamed("qwen3", "hermes", pieces)) == without_ids(fields)


def test_non_json_arguments_never_raise():
    text = '<tool_call>{"name": "f", "arguments": {"x": NaN}}</tool_call>'
    assert whole(None, "hermes", text) == {"content": text}


#: JSON nested twice as deep as Python's recursion limit: the decoder cannot decode it.
TOO_DEEP = "[" * (2 * sys.getrecursionlimit()) + "]" * (2 * sys.getrecursionlimit())
ARGUMENTS_AS_STRING = json.dumps(f'{{"a": {TOO_DEEP}}}')
TOO_DEEP_REPLIES = {
    "hermes": f'<tool_call>\n{{"name": "f", "arguments": {{"a": {TOO_DEEP}}}}}\n</tool_call>',
    "hermes, arguments as a string": (
        f'<tool_call>{{"name": "f", "arguments": {ARGUMENTS_AS_STRING}}}</tool_call>'
    ),
    "llama3_json": f'{{"name": "f", "parameters": {{"a": {TOO_DEEP}}}}}',
    "mistral": f'[TOOL_CALLS] [{{"name": "f", "arguments": {{"a": {TOO_DEEP}}}}}]',
    "mistral v11": f'[TOOL_CALLS]f[ARGS]{{"a": {TOO_DEEP}}}',
    "pythonic": f"[f(a={TOO_DEEP})]",
}


@pytest.mark.parametrize("name", TOO_DEEP_REPLIES)
def test_a_call_nested_too_deeply_is_content_whole_and_streamed(name):
    """A RecursionError from decoding is invalid markup like any other, not a 500."""
    text = TOO_DEEP_REPLIES[name]
    tools = name.split(",")[0].split(" ")[0]
    assert whole(None, tools, text) == {"content": text}
    pieces = [text[i : i + 7] for i in range(0, len(text), 7)]
    assert streamed(None, tools, pieces) == {"content": text}


@pytest.mark.parametrize(
    ("tool_choice", "text"),
    [
        ({"type": "function", "function": {"name": "f"}}, f'{{"a": {TOO_DEEP}}}'),
        ("required", f'[{{"name": "f", "arguments": {{"a": {TOO_DEEP}}}}}]'),
    ],
)
def test_a_forced_call_nested_too_deeply_is_content(tool_choice, text):
    tools = [{"type": "function", "function": {"name": "f"}}]

    def parser():
        return make_output_parser(None, tool_parser_for_request(None, tools, tool_choice))

    assert parse_whole(parser(), text) == {"content": text}
    assert collect(stream(parser(), [text[:10], text[10:]])) == {"content": text}


def test_arguments_too_deep_to_serialise_are_no_call():
    deep: list = []
    for _ in range(2 * sys.getrecursionlimit()):
        deep = [deep]
    with pytest.raises(ValueError, match="arguments of f are not JSON"):
        ParsedCall.of("f", {"a": deep})


def test_mistral_false_marker_gives_up_at_once_so_a_later_call_still_parses():
    """The decision that a marker starts no call must not depend on how much text
    followed it in the same delta (else streamed and whole replies would differ)."""
    text = '[TOOL_CALLS] sorry[TOOL_CALLS][{"name": "h", "arguments": {}}]'
    fields = whole(None, "mistral", text)
    assert fields["content"] == "[TOOL_CALLS] sorry"
    assert calls(fields) == [("h", {})]
    assert without_ids(streamed(None, "mistral", [text[:15], text[15:]])) == without_ids(fields)


def test_delta_objects_carry_only_their_channels():
    parsed = make_output_parser("qwen3", None).parse(Delta("<think>hm</think>ok", [1], 1, "stop"))
    assert parsed.to_openai() == {"reasoning_content": "hm", "content": "ok"}
    plain = make_output_parser()
    assert plain.parse(Delta("<tool_call>", [1], 1)).to_openai() == {"content": "<tool_call>"}
    assert plain.parse(Delta("", [], 1, "stop")).to_openai() == {}
