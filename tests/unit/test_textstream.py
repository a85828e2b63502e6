"""Property tests of the marker hold-back the output parsers stream through (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from openai_frontend.textstream import MarkerSearch

texts = st.text(alphabet=st.sampled_from(list("ab <>/t.\n") + ["é", "😀"]), max_size=40)
#: Tag-like markers as the parsers use (``<think>``, ``</tool_call>``): none occurs
#: inside another, which is what makes the earliest marker well defined while streaming.
markers = st.lists(
    st.text(alphabet="ab/t", min_size=1, max_size=5).map(lambda name: f"<{name}>"),
    min_size=1,
    max_size=3,
)


@st.composite
def split_text(draw) -> list[str]:
    text = draw(texts)
    points = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=8))) | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False)]


def streamed(search: MarkerSearch, pieces: list[str]) -> tuple[str, str | None]:
    """Feed ``pieces`` as a parser does: emit what is safe, carry the held-back tail."""
    out, carry = [], ""
    for piece in pieces:
        safe, marker, carry = search.split(carry + piece)
        out.append(safe)
        if marker is not None:
            return "".join(out), marker
    return "".join(out) + carry, None


@settings(max_examples=500, deadline=None)
@given(pieces=split_text(), names=markers)
def test_any_split_finds_what_the_whole_text_finds(pieces, names):
    search = MarkerSearch(names)
    whole = "".join(pieces)
    hit = search.first(whole)
    expected = (whole, None) if hit is None else (whole[: hit[0]], hit[1])
    assert streamed(search, pieces) == expected


@settings(max_examples=300, deadline=None)
@given(pieces=split_text(), names=markers)
def test_no_piece_of_a_marker_is_emitted_before_it_is_ruled_out(pieces, names):
    search = MarkerSearch(names)
    carry = ""
    for piece in pieces:
        safe, marker, carry = search.split(carry + piece)
        if marker is not None:
            break
        assert not any(name in safe for name in search.markers)
        held = not carry or any(name.startswith(carry) for name in search.markers)
        assert held, "only a possible start of a marker is held back"


def test_a_marker_spanning_many_pieces_is_held_back_then_found():
    search = MarkerSearch(["<tool_call>"])
    assert search.split("ab<to") == ("ab", None, "<to")
    assert search.split("<to" + "ol_ca") == ("", None, "<tool_ca")
    assert search.split("<tool_ca" + "ll>{") == ("", "<tool_call>", "{")


def test_a_false_start_is_released():
    search = MarkerSearch(["<think>"])
    assert search.split("x<th") == ("x", None, "<th")
    assert search.split("<th" + "ey") == ("<they", None, "")
    assert not search.could_start("plain text")
