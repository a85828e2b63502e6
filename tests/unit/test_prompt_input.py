"""Prompts, embedding inputs and ``logit_bias`` are checked in Python (so a huge one lets
the event loop run, see ``tests/test_event_loop.py``): each bad shape is still a 400
naming the field, with a message that says what is wrong."""

from __future__ import annotations

import asyncio

import pytest
from fault_engines import MODEL, FaultInjectingEngine, in_process_client

BAD = [
    ("/v1/completions", {"prompt": [1, -2]}, "prompt", "from 0, got -2"),
    ("/v1/completions", {"prompt": [True]}, "prompt", "an item is bool"),
    ("/v1/completions", {"prompt": []}, "prompt", "must not be empty"),
    ("/v1/completions", {"prompt": ["a", 1]}, "prompt", "an item is int"),
    ("/v1/completions", {"prompt": [[1], []]}, "prompt", "non-empty list of integers"),
    ("/v1/completions", {"prompt": 5}, "prompt", "a list of token-id lists"),
    ("/v1/completions", {"prompt": "a", "logit_bias": {"x": 1}}, "logit_bias", "got 'x'"),
    ("/v1/completions", {"prompt": "a", "logit_bias": {"-1": 1}}, "logit_bias", "got '-1'"),
    ("/v1/completions", {"prompt": "a", "logit_bias": {"5": 101}}, "logit_bias", "got 101"),
    ("/v1/completions", {"prompt": "a", "logit_bias": {"5": True}}, "logit_bias", "got True"),
    ("/v1/completions", {"prompt": "a", "logit_bias": [1]}, "logit_bias", "an object"),
    ("/v1/embeddings", {"input": [""]}, "input", "must not be empty"),
    ("/v1/embeddings", {"input": [1, 2.5]}, "input", "got 2.5"),
]


@pytest.mark.parametrize(("path", "fields", "param", "says"), BAD)
def test_a_bad_prompt_or_bias_is_a_400_naming_the_field(path, fields, param, says) -> None:
    async def run() -> dict:
        async with in_process_client(FaultInjectingEngine(tokens_before_fault=2)) as client:
            response = await client.post(path, json={"model": MODEL, **fields})
            assert response.status_code == 400, response.text
            return response.json()["error"]

    error = asyncio.run(run())
    assert error["param"] == param
    assert says in error["message"] and "Value error" not in error["message"]


def test_good_shapes_keep_their_values() -> None:
    from openai_frontend.schemas.completions import CompletionRequest

    for prompt, prompts in [
        ("a", ["a"]),
        (["a", "b"], ["a", "b"]),
        ([1, 2], [[1, 2]]),
        ([[1], [2, 3]], [[1], [2, 3]]),
    ]:
        request = CompletionRequest.model_validate(
            {"model": MODEL, "prompt": prompt, "logit_bias": {"7": -100, "8": 2.5}}
        )
        assert request.prompts() == prompts
        assert request.logit_bias == {7: -100.0, 8: 2.5}
