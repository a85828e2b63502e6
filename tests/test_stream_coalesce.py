"""``--stream-coalesce-ms``, through uvicorn and the whole stack, with the synthetic
engine (NOT a model: it streams " tok" one token per event-loop turn, so a long reply
outlasts a 1 ms interval and its frames are joined into fewer writes).

A client must see the very same events as from a server that writes each frame at
once: same count, same order, same JSON, the stream's end included. Which frames shared
a write is the unit tests' subject (tests/unit/test_coalesce.py, on a clock of their own).
"""

from __future__ import annotations

import json

import httpx
import pytest
from servers import default_model_server

from openai_frontend.cli import build_parser
from openai_frontend.default_model import MODEL_NAME

TOKENS = 2000
SYNTHETIC = ("--engine", "synthetic")
CHAT = {
    "model": MODEL_NAME,
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": TOKENS,
    "stream": True,
    "stream_options": {"include_usage": True},
}
MESSAGES = {
    "model": MODEL_NAME,
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": TOKENS,
    "stream": True,
}


def _events(base_url: str, path: str, body: dict) -> list[tuple[str, object]]:
    """The stream's events as (event name, payload), ids and timestamps left out."""
    with httpx.stream("POST", base_url + path, json=body, timeout=120) as response:
        assert response.status_code == 200, response.read()
        text = "".join(response.iter_text())
    events = []
    for block in text.split("\n\n")[:-1]:
        name, data = "", ""
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            name, data = (value, data) if field == "event" else (name, value)
        payload = data if data == "[DONE]" else json.loads(data)
        events.append((name, _without_ids(payload)))
    assert text.endswith("\n\n")
    return events


def _without_ids(payload: object) -> object:
    if isinstance(payload, dict):
        return {
            key: _without_ids(value)
            for key, value in payload.items()
            if key not in {"id", "created", "created_at"}
        }
    if isinstance(payload, list):
        return [_without_ids(item) for item in payload]
    return payload


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("coalesce")
    with default_model_server(folder / "plain.log", *SYNTHETIC) as plain:
        flags = (*SYNTHETIC, "--stream-coalesce-ms", "1")
        with default_model_server(folder / "coalesced.log", *flags) as coalesced:
            yield plain, coalesced


@pytest.mark.parametrize(
    ("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/messages", MESSAGES)]
)
def test_a_coalescing_server_streams_the_same_events(servers, path: str, body: dict):
    plain, coalesced = servers
    expected = _events(plain.base_url, path, body)
    assert len(expected) > TOKENS  # a frame per token, and the opening and closing ones
    assert _events(coalesced.base_url, path, body) == expected


def test_the_flag_is_checked_at_start():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--stream-coalesce-ms", "-1"])
