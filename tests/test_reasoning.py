"""Reasoning end to end: the ``thinker`` demo adapter writes ``<think>…</think>`` and
then its answer, under Qwen3's template, on a server started with
``--reasoning-parser qwen3`` (tests/parser_fixtures.py).

The split is checked against the raw text of the same server (a template-free
``/v1/completions`` of the same prompt), never against a fixed string.
"""

from __future__ import annotations

from parser_fixtures import ParserServer
from tool_replies import ask, ask_streamed, joined

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def thinker_body(server: ParserServer, **fields) -> dict:
    return {
        "model": "thinker",
        "messages": QUESTION,
        "chat_template": server.qwen3_template,
        "temperature": 0,
        "max_tokens": 60,
        **fields,
    }


def raw_reply(http, server: ParserServer) -> str:
    """What the model wrote, unparsed: the same prompt through /v1/completions."""
    prompt = http.post("/tokenize", json=thinker_body(server)).json()["prompt"]
    body = {"model": "thinker", "prompt": prompt, "temperature": 0, "max_tokens": 60}
    return http.post("/v1/completions", json=body).json()["choices"][0]["text"]


def test_reasoning_and_answer_are_split_streamed_or_not(parser_server, parser_http):
    raw = raw_reply(parser_http, parser_server)
    thought, closed, answer = raw.removeprefix("<think>").partition("</think>")
    assert raw.startswith("<think>") and closed, f"the adapter did not think: {raw!r}"
    reply = ask(parser_http, thinker_body(parser_server))
    message = reply["choices"][0]["message"]
    assert message["reasoning_content"] == thought
    assert message["content"] == answer.lstrip()
    assert reply["choices"][0]["finish_reason"] == "stop"
    details = reply["usage"]["completion_tokens_details"]
    assert 0 < details["reasoning_tokens"] < reply["usage"]["completion_tokens"]
    stream = joined(ask_streamed(parser_http, thinker_body(parser_server)))
    assert stream["reasoning_content"] == message["reasoning_content"]
    assert stream["content"] == message["content"]
    assert stream["usage"]["completion_tokens_details"] == details


def test_include_reasoning_false_leaves_the_reasoning_out(parser_server, parser_http):
    full = ask(parser_http, thinker_body(parser_server))["choices"][0]["message"]
    body = thinker_body(parser_server, include_reasoning=False)
    message = ask(parser_http, body)["choices"][0]["message"]
    assert "reasoning_content" not in message
    assert message["content"] == full["content"]
    stream = joined(ask_streamed(parser_http, body))
    assert (stream["reasoning_content"], stream["content"]) == ("", full["content"])


def test_enable_thinking_reaches_the_template(parser_server, parser_http):
    def prompt(**fields) -> str:
        body = thinker_body(parser_server, **fields)
        return parser_http.post("/tokenize", json=body).json()["prompt"]

    thinking = prompt()
    not_thinking = prompt(chat_template_kwargs={"enable_thinking": False})
    assert not_thinking == thinking + "<think>\n\n</think>\n\n"


def test_reasoning_effort_is_refused_by_a_template_without_it(parser_server, parser_http):
    body = thinker_body(parser_server, reasoning_effort="low")
    response = parser_http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "reasoning_effort"
