"""Property tests: any split of a reply into deltas parses as the whole reply does.

Replies are rendered from known calls in each family's format (so the parsed calls
are known too), wrapped in a reasoning section or not, with content text full of
markup characters and marker prefixes around them.
"""

from __future__ import annotations

import json
import keyword
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from parsers_support import MARKUP, splits, stream, whole, without_ids

from openai_frontend.parsing.pipeline import MessageBuilder
from openai_frontend.parsing.registry import REASONING_PARSERS, TOOL_PARSERS, make_output_parser

identifiers = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name)
)
strings = st.text(alphabet=list('ab <>/[]{}()";,\\\n') + ["é", "😀", "\u2028"], max_size=8)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(strings, inner, max_size=3),
    max_leaves=6,
)
arguments = st.dictionaries(identifiers, json_values, max_size=3)
tool_calls = st.lists(st.tuples(identifiers, arguments), min_size=1, max_size=3)
#: Content text: markup characters and marker prefixes, never a whole marker.
texts = (
    st.lists(
        st.sampled_from(list("ab <>/[]{}\n;") + ["<tool", "<think", "</th", "[TOOL", "[AR", "é"]),
        max_size=10,
    )
    .map("".join)
    .filter(lambda text: not any(marker in text for marker in MARKUP))
)
separators = st.sampled_from(["", "\n", "\n\n", " "])


def hermes(draw, calls) -> tuple[str, str]:
    before = draw(texts)
    blocks = [
        f'<tool_call>\n{{"name": {json.dumps(name)}, "arguments": {json.dumps(args)}}}'
        f"\n</tool_call>{draw(separators)}"
        for name, args in calls
    ]
    return before + "".join(blocks), before


def mistral(draw, calls) -> tuple[str, str]:
    before = draw(texts)
    if draw(st.booleans()):
        items = [{"name": name, "arguments": args} for name, args in calls]
        return f"{before}[TOOL_CALLS]{draw(separators)}{json.dumps(items)}", before
    named = "".join(f"[TOOL_CALLS]{name}[ARGS]{json.dumps(args)}" for name, args in calls)
    return before + named, before


def llama3_json(draw, calls) -> tuple[str, str]:
    tag = draw(st.sampled_from(["", "<|python_tag|>"]))
    objects = [json.dumps({"name": name, "parameters": args}) for name, args in calls]
    return tag + (";" + draw(separators)).join(objects), ""


def pythonic(draw, calls) -> tuple[str, str]:
    rendered = [
        f"{name}({', '.join(f'{key}={value!r}' for key, value in args.items())})"
        for name, args in calls
    ]
    after = draw(texts)
    return f"[{', '.join(rendered)}]{draw(separators)}{after}", after


FORMATS: dict[str, Callable] = {
    "hermes": hermes,
    "mistral": mistral,
    "llama3_json": llama3_json,
    "pythonic": pythonic,
}
reasonings = texts.filter(lambda text: not text.lstrip().startswith("<think"))


@st.composite
def replies(draw):
    """(reasoning parser, tool parser, reply text, reasoning, content, calls)."""
    tools = draw(st.sampled_from(sorted(FORMATS)))
    calls = draw(tool_calls)
    answer, content = FORMATS[tools](draw, calls)
    reasoning_parser = draw(st.sampled_from([None, "qwen3", "deepseek_r1"]))
    thought = draw(reasonings) if reasoning_parser else ""
    if reasoning_parser == "qwen3":
        answer = f"<think>{thought}</think>{draw(separators)}{answer}"
    elif reasoning_parser == "deepseek_r1":
        answer = f"{draw(st.sampled_from(['', '<think>']))}{thought}</think>\n\n{answer}"
    return reasoning_parser, tools, answer, thought, content, calls


def squeeze(text: str | None) -> str:
    return "".join((text or "").split())


@settings(max_examples=600, deadline=None)
@given(data=st.data(), reply=replies())
def test_any_split_parses_like_the_whole_reply(data, reply):
    reasoning_parser, tools, text, thought, content, calls = reply
    expected = whole(reasoning_parser, tools, text)
    assert [
        (call["function"]["name"], call["function"]["arguments"])
        for call in expected.get("tool_calls", [])
    ] == [(name, json.dumps(args, ensure_ascii=False)) for name, args in calls]
    assert expected.get("reasoning_content", "") == thought
    assert squeeze(expected["content"]) == squeeze(content)

    pieces = data.draw(splits(text))
    parsed = stream(make_output_parser(reasoning_parser, tools), pieces)
    message = MessageBuilder()
    for delta in parsed:
        message.add(delta)
        assert not any(marker in delta.content for marker in MARKUP)
    assert without_ids(message.fields()) == without_ids(expected)


#: Markup-rich fragments, valid and broken, to throw at every parser combination.
FRAGMENTS = [
    *MARKUP,
    "<|python_tag|>",
    '{"name": "f", "arguments": {"a": 1}}',
    '{"name": "g", "parameters": {}}',
    '[{"name": "h", "arguments": {}}]',
    "[f(a=1)",
    "g()",
    "]",
    "[",
    "{",
    "}",
    ";",
    ", ",
    " ",
    "\n",
    "<",
    "/",
    "x",
    '"',
    "name",
]
anything = st.lists(st.sampled_from(FRAGMENTS), max_size=14).map("".join)


@settings(max_examples=800, deadline=None)
@given(
    data=st.data(),
    text=anything,
    reasoning_parser=st.sampled_from([None, *sorted(REASONING_PARSERS)]),
    tools=st.sampled_from([None, *sorted(TOOL_PARSERS)]),
)
def test_any_text_streams_like_the_whole_and_loses_nothing(data, text, reasoning_parser, tools):
    expected = whole(reasoning_parser, tools, text)
    pieces = data.draw(splits(text))
    parsed = stream(make_output_parser(reasoning_parser, tools), pieces)
    message = MessageBuilder()
    for delta in parsed:
        message.add(delta)
    assert without_ids(message.fields()) == without_ids(expected)
    if not expected.get("tool_calls"):
        kept = squeeze(expected.get("reasoning_content", "") + (expected["content"] or ""))
        assert kept in _without_one_think_tag_each(squeeze(text))


def _without_one_think_tag_each(text: str) -> set[str]:
    """The reply with its reasoning tags consumed: at most one of each, the first."""
    opened = {text, text.replace("<think>", "", 1)}
    return opened | {variant.replace("</think>", "", 1) for variant in opened}
