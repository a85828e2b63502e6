"""Ask a chat server for a reply streamed and not, and put a stream back together the
way a client would: content, reasoning and tool calls joined from their fragments."""

from __future__ import annotations

from typing import Any

import httpx
from spec import assert_valid
from sse import parse_frames


def tool_call_history(question: list[dict], name: str, arguments: str) -> list[dict]:
    """``question``, then an assistant call of ``name`` with ``arguments`` (the JSON
    string a client sends back) and the tool's result."""
    call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
    return [
        *question,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]


def ask(http: httpx.Client, body: dict, headers: dict | None = None) -> dict:
    response = http.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert_valid(reply, "CreateChatCompletionResponse")
    return reply


def ask_streamed(http: httpx.Client, body: dict, headers: dict | None = None) -> list[dict]:
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    response = http.post("/v1/chat/completions", json=streamed, headers=headers)
    assert response.status_code == 200, response.text
    chunks = parse_frames(response.content)
    for chunk in chunks:
        assert_valid(chunk, "CreateChatCompletionStreamResponse")
    return chunks


def joined(chunks: list[dict]) -> dict[str, Any]:
    """The one choice's message as the chunks tell it, plus its finish_reason.

    Checks the streaming contract on the way: a chunk carries at most one entry per call
    index; a call's first entry carries index, id, type and name; later ones carry
    argument fragments only.
    """
    content, reasoning, calls, finish = [], [], [], None
    for chunk in chunks:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content.append(delta.get("content") or "")
            reasoning.append(delta.get("reasoning_content") or "")
            pieces = delta.get("tool_calls") or []
            indices = [piece["index"] for piece in pieces]
            assert len(set(indices)) == len(indices), f"one entry per index per chunk: {pieces}"
            for piece in pieces:
                _add_piece(calls, piece)
            finish = choice["finish_reason"] or finish
    return {
        "content": "".join(content),
        "reasoning_content": "".join(reasoning),
        "tool_calls": calls,
        "finish_reason": finish,
        "usage": chunks[-1]["usage"],
    }


def _add_piece(calls: list[dict], piece: dict) -> None:
    function = piece["function"]
    if piece["index"] == len(calls):
        assert piece["id"] and piece["type"] == "function" and function["name"], piece
        calls.append({"id": piece["id"], "name": function["name"], "arguments": ""})
    else:
        assert piece["index"] == len(calls) - 1, "calls arrive in index order"
        assert set(piece) == {"index", "function"} and set(function) == {"arguments"}, piece
    calls[piece["index"]]["arguments"] += function.get("arguments", "")


def calls_of(message: dict) -> list[tuple[str, str]]:
    """(name, arguments) of each call in a non-streamed message."""
    return [
        (c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or []
    ]


def streamed_calls(stream: dict) -> list[tuple[str, str]]:
    return [(c["name"], c["arguments"]) for c in stream["tool_calls"]]
