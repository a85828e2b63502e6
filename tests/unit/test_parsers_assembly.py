"""A call decoded in pieces as it streams (``parsing/assembly.py``) is the whole decode's.

Pieces are made a few characters long here (drawn), so that most containers of a few
items are cut, and the random values hold what could make a piece differ from the
whole: keys repeated (also as ``"\\u0061"`` for ``"a"``, ``1``/``True``/``1.0`` in
Python), NUL in strings, text that looks like a placeholder, empty items, trailing
commas, NaN, sets, comments, grouping parentheses, deep nesting. The reference is the
same parser with the assembly off, which decodes the whole call as the parsers always
did; a streamed reply, cut anywhere, must parse alike.
"""

from __future__ import annotations

import gc
import json
import re
from contextlib import contextmanager

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from parsers_support import splits, streamed, whole, without_ids

from openai_frontend.parsing import assembly, tools_hermes
from openai_frontend.parsing.scanning import JsonScan


@contextmanager
def assembled(**settings_):
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings_.items():
            patch.setattr(assembly, name, value)
        yield


PIECES = st.sampled_from([1, 3, 10, 40])


def by_pieces(tools: str, text: str, piece: int = 1) -> dict:
    with assembled(JSON_PIECE=piece, PYTHON_PIECE=piece):
        return without_ids(whole(None, tools, text))


def by_whole_decode(tools: str, text: str) -> dict:
    """The old path: the assembly gives up at once, and hermes decodes its whole body."""
    with assembled(MAX_DEPTH=0), pytest.MonkeyPatch.context() as patch:
        patch.setattr(tools_hermes, "_JSON_SPACE", re.compile("(?!)"))
        return without_ids(whole(None, tools, text))


def streamed_by_pieces(tools: str, pieces: list[str], piece: int) -> dict:
    with assembled(JSON_PIECE=piece, PYTHON_PIECE=piece):
        return without_ids(streamed(None, tools, pieces))


# -- JSON -------------------------------------------------------------------------------

SPACE = st.sampled_from(["", " ", "\n  ", "\t"])
JSON_ODD = [
    "-0", "1E5", "1.50", "0.00001", "1e-7", "1e400", "-0.0", "NaN", "18446744073709551616",
    '"\\u00e9"', '"\\u0000"', '"\\ud800"', '"a,b:c]}"', '"\\\\"', '"\\""', '"\\\\u0000"',
    '["\\u0000", 0]', '"\\u0061"', "[]", "{}", "", " ",
    '"</tool_call>"',
]  # fmt: skip
JSON_KEYS = ['"a"', '"\\u0061"', '"b"', '"c,d"', '"\\u0000"']
json_scalars = st.one_of(
    st.sampled_from(["null", "true", "false", *JSON_ODD]),
    st.integers().map(str),
    st.floats().map(json.dumps),
    st.text(max_size=6).map(lambda text: json.dumps(text, ensure_ascii=False)),
)


def json_list(items: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.lists(st.tuples(SPACE, items), max_size=5), st.booleans()).map(
        lambda spec: "[" + ",".join(a + b for a, b in spec[0]) + ("," if spec[1] else "") + "]"
    )


def json_object(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    entries = st.tuples(SPACE, st.sampled_from(JSON_KEYS), SPACE, values)
    return st.lists(entries, max_size=5).map(
        lambda spec: "{" + ",".join(f"{a}{key}{b}:{value}" for a, key, b, value in spec) + "}"
    )


json_values = st.recursive(
    json_scalars, lambda inner: json_list(inner) | json_object(inner), max_leaves=20
)
json_arguments = json_object(json_values)


def json_replies(arguments: str, other: str) -> dict[str, str]:
    return {
        "llama3_json": f'{{"name": "f", "parameters": {arguments}}}',
        "mistral": f'[TOOL_CALLS] [{{"name": "f", "arguments": {arguments}}}, '
        f'{{"name": "g", "arguments": {other}}}]',
        "mistral named": f"[TOOL_CALLS]f[ARGS]{arguments}",
        "hermes": f'<tool_call>\n{{"name": "f", "arguments": {arguments}}}\n</tool_call>',
        "hermes no-break space": f'<tool_call>\u00a0{{"name": "f", "arguments": {arguments}}}'
        "</tool_call>",
        "hermes two values": f'<tool_call>{{"name": "f", "arguments": {arguments}}} {other}'
        "</tool_call>",
    }


@settings(max_examples=800, deadline=None)
@given(json_arguments, json_arguments, PIECES)
@example('{"a": [1, 2], "\\u0061": [3, 4]}', "{}", 1)  # a key repeated across pieces
@example('{"a": [[1, 2, 3, 4, 5, 6], ["\\u0000", 0]]}', "{}", 10)  # a placeholder look-alike
@example('{"a": [1, 2,]}', "{}", 1)  # a trailing comma
@example('{"a": [ , 1]}', "{}", 1)  # an empty item
@example('{"a": [[1, NaN], [2]]}', "{}", 1)
def test_json_calls_in_pieces_are_the_whole_decodes(arguments, other, piece):
    for form, text in json_replies(arguments, other).items():
        tools = form.split()[0]
        assert by_pieces(tools, text, piece) == by_whole_decode(tools, text), form


@settings(max_examples=300, deadline=None)
@given(st.data(), json_arguments, PIECES)
def test_json_calls_in_pieces_parse_alike_however_streamed(data, arguments, piece):
    for form, text in json_replies(arguments, arguments).items():
        tools = form.split()[0]
        pieces = data.draw(splits(text))
        assert streamed_by_pieces(tools, pieces, piece) == by_pieces(tools, text, piece), form


def nested(depth: int) -> str:
    """``[[[1, 2], 2], 2]``: every level has an item of its own, so every level is cut."""
    return "[" * depth + "1" + ", 2]" * depth


@pytest.mark.parametrize(("depth", "is_call"), [(70, True), (1500, False)])
def test_deep_nesting_is_left_to_the_whole_decode(depth, is_call):
    text = f'{{"name": "f", "parameters": {{"a": {nested(depth)}}}}}'
    assert by_pieces("llama3_json", text) == by_whole_decode("llama3_json", text)
    assert bool(by_pieces("llama3_json", text).get("tool_calls")) is is_call


# -- Python -----------------------------------------------------------------------------

PY_ODD = [
    "None", "True", "False", "...", "1j", "-1", "- 1", "-(1)", "(1)", "(1,)", "()", "0x1F",
    "1_000", "1e999", "1.", ".5", "1e-7", "-0.0", "2**8", "x", "f(1)", "'a' 'b'",
    "'\\x00'", "'\\0'", "'\\N{NULL}'", "'\\u0000'", "r'\\x00'", "b'x'", "'a,b]'",
    "'''x\n,]'''", '"it\'s"', '["\\x00", 0]', "[]", "{}", "set()", "1 # a comment, ]\n",
    "{1, 2}", "{(1, 2): 3}", "{[1]: 2}", "[1][0]", "", " ",
]  # fmt: skip
PY_KEYS = ["'a'", "1", "True", "1.0", "'1'", "(1, 2)", "None"]
py_scalars = st.one_of(
    st.sampled_from(PY_ODD),
    st.integers().map(str),
    st.floats(allow_nan=False).map(repr),
    st.text(max_size=6).map(repr),
)


def py_sequence(items: st.SearchStrategy[str], opener: str, closer: str) -> st.SearchStrategy:
    return st.tuples(st.lists(st.tuples(SPACE, items), max_size=5), st.booleans()).map(
        lambda spec: (
            opener + ",".join(a + b for a, b in spec[0]) + ("," if spec[1] else "") + closer
        )
    )


def py_dict(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    entries = st.tuples(SPACE, st.sampled_from(PY_KEYS), values)
    return st.lists(entries, max_size=5).map(
        lambda spec: "{" + ",".join(f"{a}{key}: {value}" for a, key, value in spec) + "}"
    )


py_values = st.recursive(
    py_scalars,
    lambda inner: (
        py_sequence(inner, "[", "]")
        | py_sequence(inner, "(", ")")
        | py_sequence(inner, "{", "}")
        | py_dict(inner)
    ),
    max_leaves=20,
)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ast on "\N" and the like
@pytest.mark.filterwarnings("ignore::SyntaxWarning")  # ast on "[1][0]" and the like
@settings(max_examples=1000, deadline=None)
@given(py_values, py_values, PIECES)
@example("{1: [1, 2], True: [3, 4]}", "[]", 1)  # a key repeated across pieces
@example("[[1, 2, 3, 4, 5, 6], ['\\x00', 0]]", "[]", 10)  # a placeholder look-alike
@example("[(1, 2, 3), ([4], [5]), ([6])]", "-([1, 2])", 1)
@example("{(1, [2]): 3}", "{[1, 2]}", 1)
@example("[ , 1]", "[1, 2, ]", 1)
def test_pythonic_calls_in_pieces_are_the_whole_decodes(first, second, piece):
    text = f"[f(a={first}, b={second}), g(c={second})]"
    assert by_pieces("pythonic", text, piece) == by_whole_decode("pythonic", text)


@pytest.mark.parametrize(("depth", "is_call"), [(50, True), (300, False)])
def test_pythonic_deep_nesting_is_left_to_the_whole_parse(depth, is_call):
    text = f"[f(a={nested(depth)})]"
    assert by_pieces("pythonic", text) == by_whole_decode("pythonic", text)
    assert bool(by_pieces("pythonic", text).get("tool_calls")) is is_call


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::SyntaxWarning")
@settings(max_examples=300, deadline=None)
@given(st.data(), py_values, PIECES)
def test_pythonic_calls_in_pieces_parse_alike_however_streamed(data, value, piece):
    text = f"[f(a={value}, b=[{value}, {value}])]"
    pieces = data.draw(splits(text))
    assert streamed_by_pieces("pythonic", pieces, piece) == by_pieces("pythonic", text, piece)


# -- the garbage collector ----------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
def test_pieces_are_decoded_with_the_collector_paused_then_restored(enabled, monkeypatch):
    """A piece's objects die with its decode: a collection meanwhile would only promote
    them and bring a full pass nearer. The collector's own state is left as it was."""
    seen = []

    def decode(text):
        seen.append(gc.isenabled())
        return json.loads(text)

    monkeypatch.setattr(assembly, "PYTHON_PIECE", 1)  # the piece size of other dialects
    dialect = assembly.Dialect(decode, assembly.JSON.placeholder, assembly.JSON.clean)
    text = '{"a": [[1, 2], [3, 4], [5, 6]]}'
    pieces = assembly.Assembly(dialect, cut_from=2)
    scan = JsonScan(assembly=pieces)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        found = scan.scan(text)
        after = gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
    assert found is not None and found.closed
    assert pieces.skeleton(text, found.start, found.end).holes
    assert seen and not any(seen)
    assert after is enabled
