"""The fields vllm-router writes into every body are accepted at their neutral value only;
any other value and any unlisted field stay 400s naming the field (through the real app,
FaultInjectingEngine: the refusals happen before any engine is reached)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fault_engines import MODEL, FaultInjectingEngine, in_process_client

from openai_frontend.router_compat import ROUTER_FIELDS
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.schemas.completions import CompletionRequest

CHAT_PATH = "/v1/chat/completions"
README = Path(__file__).resolve().parents[2] / "README.md"

#: What vllm-router 0.1.17 forwarded for ``{"model", "messages", "max_tokens"}`` and for
#: ``{"model", "prompt", "max_tokens"}`` (recorded from the router, at a capturing worker).
ROUTED_CHAT = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "hi"}],
    "stream": False,
    "max_tokens": 3,
    "logprobs": False,
    "no_stop_trim": False,
    "ignore_eos": False,
    "continue_final_message": False,
    "skip_special_tokens": True,
    "separate_reasoning": True,
    "stream_reasoning": True,
    "return_hidden_states": False,
    "include_reasoning": True,
}
ROUTED_COMPLETION = {
    "model": MODEL,
    "prompt": "hi",
    "max_tokens": 3,
    "stream": False,
    "echo": False,
    "no_stop_trim": False,
    "ignore_eos": False,
    "skip_special_tokens": True,
    "return_hidden_states": False,
}


def test_routed_bodies_validate() -> None:
    chat = ChatCompletionRequest.model_validate(ROUTED_CHAT)
    assert chat.model_dump(exclude_defaults=True) == {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
    }
    completion = CompletionRequest.model_validate(ROUTED_COMPLETION)
    assert completion.prompt == "hi" and completion.max_tokens == 3


def _status(path: str, body: dict) -> tuple[int, dict]:
    async def post() -> tuple[int, dict]:
        async with in_process_client(FaultInjectingEngine(tokens_before_fault=1)) as client:
            response = await client.post(path, json=body)
            return response.status_code, response.json()

    return asyncio.run(post())


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {**ROUTED_CHAT, "no_stop_trim": True}, "no_stop_trim"),
        ("/v1/chat/completions", {**ROUTED_CHAT, "no_stop_trim": 0}, "no_stop_trim"),
        (CHAT_PATH, {**ROUTED_CHAT, "separate_reasoning": False}, "separate_reasoning"),
        ("/v1/chat/completions", {**ROUTED_CHAT, "stream_reasoning": False}, "stream_reasoning"),
        ("/v1/chat/completions", {**ROUTED_CHAT, "stop_trim": False}, "stop_trim"),
        (
            "/v1/completions",
            {**ROUTED_COMPLETION, "return_hidden_states": True},
            "return_hidden_states",
        ),
        ("/v1/completions", {**ROUTED_COMPLETION, "hidden": False}, "hidden"),
    ],
)
def test_other_values_and_unlisted_fields_stay_refused(path: str, body: dict, param: str) -> None:
    status, answer = _status(path, body)
    assert status == 400, answer
    assert answer["error"]["param"] == param
    assert "Unrecognized request argument" in answer["error"]["message"]


def test_readme_lists_every_router_field() -> None:
    text = README.read_text()
    for field in ROUTER_FIELDS:
        assert f"`{field.name}: {str(field.neutral).lower()}`" in text, field.name
