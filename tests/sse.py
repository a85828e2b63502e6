"""Read a raw SSE body the strict way: only ``data: ...\\n\\n`` frames, then ``[DONE]``."""

from __future__ import annotations

import json


def parse_frames(raw: bytes) -> list[dict]:
    """JSON payloads of every frame; asserts the framing and the final ``[DONE]``."""
    text = raw.decode("utf-8")
    assert text.endswith("data: [DONE]\n\n"), f"stream must end with [DONE]: {text[-200:]!r}"
    frames = text.split("\n\n")
    assert frames[-1] == ""
    frames = frames[:-1]
    assert frames[-1] == "data: [DONE]"
    assert frames.count("data: [DONE]") == 1
    payloads = []
    for frame in frames[:-1]:
        assert frame.startswith("data: "), f"not a data frame: {frame!r}"
        assert "\n" not in frame, f"one line per frame: {frame!r}"
        payloads.append(json.loads(frame[len("data: ") :]))
    return payloads
