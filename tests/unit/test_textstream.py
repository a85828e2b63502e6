"""Property tests of the streaming text assembler (hypothesis).

The tokenizer is the default model's own byte-level BPE tokenizer, where characters
outside ASCII often span several tokens.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openai_frontend.default_model import default_model_dir, is_prepared
from openai_frontend.textstream import IncrementalDetokenizer, StopStringCutter

MODEL_DIR = default_model_dir()


@functools.cache
def tokenizer():
    if not is_prepared(MODEL_DIR):
        pytest.skip(f"needs the default model's tokenizer: run `make model` to prepare {MODEL_DIR}")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL_DIR)


texts = st.text(
    alphabet=st.sampled_from(
        list("ab c.\n") + ["é", "ß", "你", "好", "😀", "👍", "\U0001f3fd", "ё", "\u0301"]
    ),
    max_size=40,
)


def cuts(draw, length: int) -> list[int]:
    points = draw(st.lists(st.integers(0, length), max_size=8))
    return sorted(set(points) | {0, length})


@st.composite
def split_text(draw) -> tuple[str, list[str]]:
    text = draw(texts)
    points = cuts(draw, len(text))
    return text, [text[a:b] for a, b in zip(points, points[1:], strict=False)]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), text=texts)
def test_detokenizer_stream_equals_whole_decode(data, text):
    tok = tokenizer()
    ids = tok.encode(text, add_special_tokens=False)
    points = cuts(data.draw, len(ids))
    detok = IncrementalDetokenizer(tok.decode)
    pieces = [detok.feed(ids[a:b]) for a, b in zip(points, points[1:], strict=False)]
    pieces.append(detok.flush())
    assert "".join(pieces) == tok.decode(ids)
    whole = tok.decode(ids)
    for piece in pieces[:-1]:
        assert "\ufffd" not in piece or "\ufffd" in whole, "no chunk ends inside a character"


def _reference(pieces: list[str], stops: list[str], include: bool) -> str:
    """What a non-streamed request returns for the same generation steps.

    The engine stops at the first step after which the text holds a stop string, and
    the text is cut at the earliest stop string in it then.
    """
    text = ""
    for piece in pieces:
        text += piece
        hits = [(text.find(s), s) for s in stops if s and s in text]
        if hits:
            at, stop = min(hits, key=lambda h: h[0])
            return text[: at + len(stop)] if include else text[:at]
    return text


@settings(max_examples=500, deadline=None)
@given(
    parts=split_text(),
    stops=st.lists(texts.filter(bool), min_size=1, max_size=3),
    include=st.booleans(),
)
def test_stop_cutter_stream_equals_reference(parts, stops, include):
    text, pieces = parts
    cutter = StopStringCutter(stops, include_stop=include)
    out = [cutter.feed(piece) for piece in pieces]
    out.append(cutter.flush())
    assert "".join(out) == _reference(pieces, stops, include)
    if not include:
        for chunk in out:
            assert not any(stop in chunk for stop in stops), (chunk, stops)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), text=texts, stop=texts.filter(bool))
def test_tokens_to_text_to_stop_is_exact(data, text, stop):
    """The whole pipeline: random token splits, then stop strings, then chunks."""
    tok = tokenizer()
    ids = tok.encode(text, add_special_tokens=False)
    points = cuts(data.draw, len(ids))
    detok, cutter = IncrementalDetokenizer(tok.decode), StopStringCutter([stop])
    steps = [detok.feed(ids[a:b]) for a, b in zip(points, points[1:], strict=False)]
    steps.append(detok.flush())
    out = [cutter.feed(step) for step in steps]
    out.append(cutter.flush())
    assert "".join(steps) == tok.decode(ids)
    assert "".join(out) == _reference(steps, [stop], False)
    assert not any(stop in chunk for chunk in out)


def test_stop_spanning_many_pieces():
    cutter = StopStringCutter(["STOP"])
    assert [cutter.feed(p) for p in ["ab", "cS", "T", "O", "Pxyz"]] == ["ab", "c", "", "", ""]
    assert cutter.stopped


def test_false_start_is_released():
    cutter = StopStringCutter(["STOP"])
    assert cutter.feed("xST") == "x"
    assert cutter.feed("ay") == "STay"
    assert cutter.flush() == ""
