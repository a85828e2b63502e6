"""The tool parsers do bounded work per delta, and give up on prose at once.

Each long reply is fed 4 characters per delta, as an engine streams it. No delta may
parse (``ast.parse``, a JSON decode) or serialise a whole long call: that is done in
bounded pieces as the call streams (see ``openai_frontend.parsing.assembly``), each
character about once; and a reply that only starts like a call (``[Note: I'm ...``)
must stream as content long before its end. The last tests check the early verdicts against the
reference rule (the first prefix of the reply that parses), on random markup.
"""

from __future__ import annotations

import ast
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parsers_support import stream, streamed, whole, without_ids

from openai_frontend.parsing import assembly
from openai_frontend.parsing.registry import make_output_parser
from openai_frontend.parsing.tools_block import call_from_object
from openai_frontend.parsing.tools_llama3_json import PYTHON_TAG
from openai_frontend.parsing.tools_pythonic import _calls

LONG = 120_000


def pieces_of(text: str, size: int = 4) -> list[str]:
    return [text[at : at + size] for at in range(0, len(text), size)]


def first_content_delta(tools: str, text: str) -> tuple[int, int]:
    """(index of the first delta that carried content, number of deltas)."""
    pieces = pieces_of(text)
    deltas = stream(make_output_parser(None, tools), pieces)
    return next(i for i, delta in enumerate(deltas) if delta.content), len(deltas)


PROSE = "I'm not sure [1], but (as {the} docs say) it's fine.\n"


@pytest.mark.parametrize(
    ("tools", "text"),
    [
        ("pythonic", "[Note: " + PROSE * 2000 + "]"),
        ("pythonic", "[f(a=1), I'm " + PROSE * 2000),
        ("llama3_json", '{Note: "' + PROSE * 2000 + "}"),
        ("mistral", "[TOOL_CALLS] [Note: " + PROSE * 2000 + "]"),
    ],
)
def test_prose_that_starts_like_a_call_streams_before_the_end(tools, text):
    first, count = first_content_delta(tools, text)
    assert first < 10 < count
    assert whole(None, tools, text) == {"content": text}
    assert streamed(None, tools, pieces_of(text)) == {"content": text}


def long_pythonic_calls() -> str:
    rows = ", ".join(f"[{i}, 'r]{i}', {{'k': [{i}]}}]" for i in range(LONG // 30))
    return f'[write_rows(path="out.csv", rows=[{rows}]), done(ok=True)]'


def long_json_arguments() -> dict:
    return {"rows": [[i, f"r]{i}", {"k": [i]}] for i in range(LONG // 30)]}


def long_replies() -> dict[str, str]:
    arguments = long_json_arguments()
    call = {"name": "write_rows", "arguments": arguments}
    return {
        "pythonic": long_pythonic_calls(),
        "llama3_json": json.dumps({"name": "write_rows", "parameters": arguments}),
        "mistral": "[TOOL_CALLS] " + json.dumps([call, {"name": "done", "arguments": {}}]),
        "mistral named": "[TOOL_CALLS]write_rows[ARGS]" + json.dumps(arguments),
        "hermes": f"<tool_call>\n{json.dumps(call)}\n</tool_call>",
    }


@pytest.fixture
def work(monkeypatch) -> list[int]:
    """The length of each text parsed (``ast.parse``, which ``ast.literal_eval`` runs
    too; JSON decodes, which all end in ``raw_decode``) and of each ``json.dumps``."""
    sizes: list[int] = []
    real_parse, real_decode, real_dumps = ast.parse, json.JSONDecoder.raw_decode, json.dumps

    def counted_parse(source, *args, **kwargs):
        sizes.append(len(source))
        return real_parse(source, *args, **kwargs)

    def counted_decode(self, text, *args, **kwargs):
        sizes.append(len(text))
        return real_decode(self, text, *args, **kwargs)

    def counted_dumps(*args, **kwargs):
        text = real_dumps(*args, **kwargs)
        sizes.append(len(text))
        return text

    monkeypatch.setattr(ast, "parse", counted_parse)
    monkeypatch.setattr(json.JSONDecoder, "raw_decode", counted_decode)
    monkeypatch.setattr(json, "dumps", counted_dumps)
    return sizes


def calls_of(fields: dict) -> list[tuple[str, str]]:
    return [
        (call["function"]["name"], call["function"]["arguments"]) for call in fields["tool_calls"]
    ]


@pytest.mark.parametrize("form", sorted(long_replies()))
def test_a_long_call_is_parsed_and_serialised_in_small_pieces(form, work, monkeypatch):
    """No delta parses or serialises the whole call: each piece is bounded, and each
    character is parsed and serialised about once. The calls are the whole parse's."""
    text = long_replies()[form]
    assert len(text) > LONG and text.count("]") > 10_000
    tools = form.split()[0]
    with monkeypatch.context() as whole_only:
        whole_only.setattr(assembly, "MAX_DEPTH", 0)  # the assembly gives up at once
        expected = calls_of(whole(None, tools, text))
    work.clear()
    fields = streamed(None, tools, pieces_of(text))
    assert max(work) < 10_000
    assert sum(work) < 2.2 * len(text)
    assert fields["content"] is None
    assert calls_of(fields) == expected
    assert expected[0][0] == "write_rows"
    assert json.loads(expected[0][1])["rows"][-1][2] == {"k": [LONG // 30 - 1]}


def test_a_long_flat_arguments_object_is_cut_too(work, monkeypatch):
    arguments = {f"key {i}": [i, f"r]{i}"] for i in range(LONG // 20)}
    text = "[TOOL_CALLS]write_rows[ARGS]" + json.dumps(arguments)
    with monkeypatch.context() as whole_only:
        whole_only.setattr(assembly, "MAX_DEPTH", 0)
        expected = calls_of(whole(None, "mistral", text))
    work.clear()
    fields = streamed(None, "mistral", pieces_of(text))
    assert len(text) > LONG and max(work) < 10_000
    assert calls_of(fields) == expected
    assert json.loads(expected[0][1]) == arguments


# -- the early verdicts agree with the reference rule -----------------------------------


def reference_pythonic(text: str) -> dict:
    """Each block is the shortest ``[...`` prefix that ``ast.parse`` accepts."""
    found, rest = [], text
    while (head := rest.lstrip()).startswith("["):
        calls, end = None, 0
        for end in (at + 1 for at, char in enumerate(head) if char == "]"):
            try:
                tree = ast.parse(head[:end].strip(), mode="eval")
            except (SyntaxError, ValueError, RecursionError):
                continue
            calls = _calls(tree.body)
            break
        if not calls:
            break
        found += [(call.name, call.arguments) for call in calls]
        rest = head[end:]
    return _fields(text, found, rest)


def reference_llama3_json(text: str) -> dict:
    """Each block is the JSON value that ``raw_decode`` finds at its start."""
    found, rest = [], text
    while True:
        body = head = rest.lstrip()
        if found and head.startswith(";"):  # the separator is optional
            body = head[1:].lstrip()
        body = body.removeprefix(PYTHON_TAG).lstrip()
        try:
            value, end = json.JSONDecoder().raw_decode(body)
            call = call_from_object(value, ("parameters", "arguments"))
        except ValueError:
            break
        found.append((call.name, call.arguments))
        rest = body[end:]
    return _fields(text, found, rest)


def _fields(text: str, found: list[tuple[str, str]], rest: str) -> dict:
    content = rest.lstrip() if found else text
    return {"content": content or (None if found else ""), "calls": found}


def parsed(tools: str, text: str) -> dict:
    fields = whole(None, tools, text)
    calls = fields.get("tool_calls", [])
    found = [(call["function"]["name"], call["function"]["arguments"]) for call in calls]
    return {"content": fields["content"], "calls": found}


PYTHON_BITS = [
    "[", "]", "(", ")", "{", "}", "f", "m.g", "a", "=", "1", ",", " ", "\n", ".", ":",
    "'", '"', "'''", '"""', "\\", "#", "x]y", "I'm", "(a=1)", "f(a=[1])", "Note", "r",
]  # fmt: skip
JSON_BITS = [
    "{", "}", "[", "]", '"', '"name"', '"parameters"', '"arguments"', '"f"', ":", ",",
    " ", "\n", "1", "-2.5e3", "true", "null", "NaN", "\\", "\\u00e9", "x", ";", PYTHON_TAG,
    "\t", "\x01", "{}", '{"name": "f", "parameters": {}}',
]  # fmt: skip


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ast.parse on "\#" and the like
@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PYTHON_BITS), max_size=16).map("".join))
def test_pythonic_verdicts_match_the_first_prefix_that_parses(text):
    assert parsed("pythonic", "[" + text) == reference_pythonic("[" + text)


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from(["{", '{"name": "f", "parameters": ', '{"name": "g", "arguments": {"x": ']),
    st.lists(st.sampled_from(JSON_BITS), max_size=16).map("".join),
)
def test_llama3_json_verdicts_match_the_first_value_that_decodes(start, text):
    assert parsed("llama3_json", start + text) == reference_llama3_json(start + text)


def test_mistral_gives_a_broken_list_up_so_a_later_marker_still_calls():
    text = '[TOOL_CALLS] [Note: I\'m not sure] [TOOL_CALLS][{"name": "h", "arguments": {}}]'
    fields = whole(None, "mistral", text)
    assert fields["content"] == "[TOOL_CALLS] [Note: I'm not sure] "
    assert [call["function"]["name"] for call in fields["tool_calls"]] == ["h"]
    assert without_ids(streamed(None, "mistral", pieces_of(text))) == without_ids(fields)


@pytest.mark.parametrize(
    "text",
    [
        "[f(a='it''s')]",
        "[f(a='''x\n]'''), g(b=\"\"\"]\"\"\")]",
        "[f(a=1,  # a comment ]\n), g(b=2)]",
        "[m.g(a=(1, [2]),\n  b={'k': None},\n)]",
        "[f(a='line\\\ncontinued')]",
        "[f(a=1), \\\n g()]",
    ],
)
def test_pythonic_tokens_that_hide_brackets(text):
    assert parsed("pythonic", text) == reference_pythonic(text)
    assert parsed("pythonic", text)["calls"]
    assert without_ids(streamed(None, "pythonic", list(text))) == without_ids(
        whole(None, "pythonic", text)
    )
