"""The render endpoints answer generation's own prompt tokens, in vLLM 0.32's shape."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Server

#: ``GenerateRequest.model_fields`` in vLLM 0.32 (vllm/entrypoints/scale_out/
#: token_in_token_out/protocol.py), the body its render endpoints answer.
GENERATE_REQUEST_KEYS = [
    "request_id",
    "token_ids",
    "token_offsets",
    "features",
    "content_parts",
    "sampling_params",
    "model",
    "reasoning_ended",
    "reasoning_parser_kwargs",
    "return_token_ids",
    "output_mode",
    "stream",
    "stream_options",
    "cache_salt",
    "priority",
    "kv_transfer_params",
    "ec_transfer_params",
]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _chat_body(server: Server) -> dict:
    """A chat body whose prompt depends on its tools and on ``chat_template_kwargs``."""
    return {
        "model": server.model,
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is the weather in Paris?"},
        ],
        "tools": [WEATHER_TOOL],
        "chat_template_kwargs": {"enable_thinking": False},
    }


def test_chat_render_is_generations_prompt(server: Server, http: httpx.Client) -> None:
    body = _chat_body(server)
    rendered = http.post("/v1/chat/completions/render", json=body)
    assert rendered.status_code == 200, rendered.text
    answer = rendered.json()
    assert list(answer) == GENERATE_REQUEST_KEYS
    assert answer["model"] == server.model
    assert answer["request_id"].startswith("chatcmpl-")
    tokens = answer["token_ids"]
    assert tokens == http.post("/tokenize", json=body).json()["tokens"]
    without_tools = http.post("/v1/chat/completions/render", json={**body, "tools": None}).json()[
        "token_ids"
    ]
    assert len(without_tools) < len(tokens)  # the tools are in the prompt
    generated = http.post("/v1/chat/completions", json={**body, "max_tokens": 1})
    assert generated.status_code == 200, generated.text
    assert generated.json()["usage"]["prompt_tokens"] == len(tokens)
    assert answer["sampling_params"]["max_tokens"] > 0


def test_completions_render_one_per_prompt(server: Server, http: httpx.Client) -> None:
    text = "The capital of France is"
    body = {"model": server.model, "prompt": [text, "Hello"], "max_tokens": 3}
    rendered = http.post("/v1/completions/render", json=body)
    assert rendered.status_code == 200, rendered.text
    first, second = rendered.json()
    assert list(first) == GENERATE_REQUEST_KEYS
    assert first["sampling_params"]["max_tokens"] == 3
    assert first["request_id"] != second["request_id"]
    hello = {"model": server.model, "prompt": "Hello", "add_special_tokens": True}
    assert second["token_ids"] == http.post("/tokenize", json=hello).json()["tokens"]
    ids = http.post("/v1/completions/render", json={**body, "prompt": [[1, 2, 3], [4, 5]]})
    assert [item["token_ids"] for item in ids.json()] == [[1, 2, 3], [4, 5]]
    # generation's own prompt tokens: echo with logprobs lists one entry per prompt token.
    scored = http.post(
        "/v1/completions",
        json={"model": server.model, "prompt": text, "max_tokens": 1, "echo": True, "logprobs": 0},
    ).json()
    assert scored["usage"]["prompt_tokens"] == len(first["token_ids"])
    echoed = scored["choices"][0]["logprobs"]["tokens"][: len(first["token_ids"])]
    assert (
        "".join(echoed)
        == http.post(
            "/detokenize", json={"model": server.model, "tokens": first["token_ids"]}
        ).json()["prompt"]
    )


@pytest.mark.parametrize("path", ["/v1/chat/completions/render", "/v1/completions/render"])
def test_render_needs_the_user_key(server: Server, path: str) -> None:
    answer = httpx.post(server.url(path), json={"model": server.model, "prompt": "hi"})
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("path", "extra", "param", "status"),
    [
        ("/v1/chat/completions/render", {"messages": None}, "messages", 400),
        ("/v1/chat/completions/render", {"no_such_field": 1}, "no_such_field", 400),
        ("/v1/chat/completions/render", {"model": "no-such-model"}, None, 404),  # as OpenAI
        ("/v1/chat/completions/render", {"max_tokens": 10**9}, "max_tokens", 400),
        ("/v1/completions/render", {"prompt": ""}, "prompt", 400),
        ("/v1/completions/render", {"prompt": "hi", "no_such_field": 1}, "no_such_field", 400),
    ],
)
def test_render_refuses_bad_bodies(
    server: Server, http: httpx.Client, path: str, extra: dict, param: str | None, status: int
) -> None:
    body = {"model": server.model, "messages": [{"role": "user", "content": "hi"}], **extra}
    if path.startswith("/v1/completions"):
        body.pop("messages")
    body = {key: value for key, value in body.items() if value is not None}
    answer = http.post(path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["param"] == param
