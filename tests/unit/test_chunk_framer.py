"""ChunkFramer's pre-rendered text frame is byte for byte the frame its general path
makes of the same choice: the fast path changes the cost, never the bytes."""

from __future__ import annotations

import pytest

from openai_frontend.streaming import ChunkFramer

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("index", [0, 3])
@pytest.mark.parametrize("text", [" tok", 'quote " and \\ backslash\n', "ünï 😀", "</s>\u2028"])
@pytest.mark.parametrize("field", ["content", "reasoning_content"])
def test_a_text_frame_is_the_general_frame_of_the_same_choice(
    include_usage: bool, index: int, text: str, field: str
) -> None:
    framer = ChunkFramer(HEAD, include_usage)
    choice = {"index": index, "delta": {field: text}, "logprobs": None, "finish_reason": None}
    assert framer.text(index, field.encode(), text) == framer.choice(choice)
