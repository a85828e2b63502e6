"""EleutherAI's lm-evaluation-harness (PyPI ``lm-eval``) scores the served model through
``/v1/completions``: its ``local-completions`` model computes log-likelihoods with
``echo: true``, ``logprobs: 1`` and ``max_tokens: 1`` (every multiple-choice task runs
this way). Driven through lm-eval's own model class, on requests the test writes; nothing
comes from a hub (the tokenizer is the served model's folder).
"""

from __future__ import annotations

import math

import pytest
from conftest import Server

#: (context, continuation) pairs, as a multiple-choice task hands them to the model.
PAIRS = [
    ("The colour of the sky on a clear day is", " blue"),
    ("The colour of the sky on a clear day is", " green"),
    ("Two plus two equals", " four"),
]


@pytest.fixture(scope="module")
def harness(server: Server, monkeypatch_module):
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    monkeypatch_module.setenv("OPENAI_API_KEY", server.api_key)
    return LocalCompletionsAPI(
        model=server.model,
        base_url=server.url("/v1/completions"),
        tokenizer=str(server.model_path),
        tokenizer_backend="huggingface",
        max_retries=1,
    )


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_lm_eval_loglikelihood_gets_the_engines_prompt_logprobs(server: Server, harness, http):
    from lm_eval.api.instance import Instance

    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=index)
        for index, pair in enumerate(PAIRS)
    ]
    scores = harness.loglikelihood(requests)
    assert len(scores) == len(PAIRS)
    for (context, continuation), (loglikelihood, greedy) in zip(PAIRS, scores, strict=True):
        assert math.isfinite(loglikelihood) and loglikelihood < 0
        assert isinstance(greedy, bool)
        # The same numbers as the gateway's prompt logprobs for the whole text, read
        # directly: the continuation's tokens are the last ones of the echoed prompt. Two
        # generated tokens, so the engine streams more than one output after the prompt's.
        ids = harness.tok_encode(context + continuation)
        context_ids = harness.tok_encode(context)
        body = http.post(
            "/v1/completions",
            json={
                "model": server.model,
                "prompt": ids,
                "echo": True,
                "logprobs": 1,
                "max_tokens": 2,
                "temperature": 0,
            },
        ).json()
        logprobs = body["choices"][0]["logprobs"]
        assert len(logprobs["tokens"]) == len(ids) + body["usage"]["completion_tokens"]
        assert logprobs["token_logprobs"][0] is None and logprobs["top_logprobs"][0] is None
        tail = logprobs["token_logprobs"][len(context_ids) : len(ids)]
        assert loglikelihood == pytest.approx(sum(tail), abs=1e-4)


def test_echo_with_logprobs_streamed_is_refused_naming_stream(server: Server, http):
    answer = http.post(
        "/v1/completions",
        json={"model": server.model, "prompt": "Hi", "echo": True, "logprobs": 1, "stream": True},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "stream"


def test_echo_with_max_tokens_zero_is_refused_naming_max_tokens(server: Server, http):
    """Score-only requests (OpenAI's legacy ``max_tokens: 0``) are not served; lm-eval
    never sends them (its loglikelihood asks for one token and drops it)."""
    answer = http.post(
        "/v1/completions",
        json={"model": server.model, "prompt": "Hi", "echo": True, "logprobs": 1, "max_tokens": 0},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "max_tokens"
