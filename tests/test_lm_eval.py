"""EleutherAI's lm-evaluation-harness (PyPI ``lm-eval``) scores the served model through
``/v1/completions``: its ``local-completions`` model computes log-likelihoods with
``echo: true``, ``logprobs: 1`` and ``max_tokens: 1`` (every multiple-choice task runs
this way). Driven through lm-eval's own model class, on requests the test writes; nothing
comes from a hub (the tokenizer is the served model's folder).
"""

from __future__ import annotations

import json
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


def _score(http, server: Server, ids: list[int], **fields) -> dict:
    answer = http.post(
        "/v1/completions",
        json={"model": server.model, "prompt": ids, "temperature": 0, **fields},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_max_tokens_zero_with_echo_scores_the_prompt_only(server: Server, http):
    """OpenAI's legacy score-only request: the prompt back with its logprobs, nothing
    generated, "length", no completion tokens; the scores are the one-token request's."""
    ids = http.post("/tokenize", json={"model": server.model, "prompt": PAIRS[0][0]}).json()
    ids = ids["tokens"]
    with_one = _score(http, server, ids, echo=True, logprobs=2, max_tokens=1)
    scored = _score(http, server, ids, echo=True, logprobs=2, max_tokens=0)
    (choice,) = scored["choices"]
    assert choice["text"] == with_one["choices"][0]["text"][: len(choice["text"])]
    assert choice["finish_reason"] == "length"
    assert scored["usage"]["completion_tokens"] == 0
    assert scored["usage"]["prompt_tokens"] == len(ids)
    logprobs = choice["logprobs"]
    assert len(logprobs["tokens"]) == len(ids)
    expected = with_one["choices"][0]["logprobs"]["token_logprobs"][: len(ids)]
    assert logprobs["token_logprobs"][0] is None
    assert logprobs["token_logprobs"][1:] == pytest.approx(expected[1:], abs=1e-4)
    assert all(len(top) <= 2 for top in logprobs["top_logprobs"][1:])
    streamed = http.post(
        "/v1/completions",
        json={"model": server.model, "prompt": ids, "echo": True, "max_tokens": 0, "stream": True},
    )
    frames = [line for line in streamed.text.splitlines() if line.startswith("data: {")]
    texts = [json.loads(frame[6:])["choices"][0] for frame in frames]
    assert "".join(item["text"] for item in texts) == choice["text"]
    assert texts[-1]["finish_reason"] == "length"


def test_max_tokens_zero_without_echo_is_refused_naming_max_tokens(server: Server, http):
    answer = http.post(
        "/v1/completions", json={"model": server.model, "prompt": "Hi", "max_tokens": 0}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "max_tokens"


def test_prompt_logprobs_in_vllms_shape_agree_with_echo(server: Server, http):
    """vLLM's ``prompt_logprobs``: None for the first token, then each prompt token's id
    with its logprob, rank and text, and at most k alternatives besides; the logprobs
    are the ones echo lists."""
    ids = http.post("/tokenize", json={"model": server.model, "prompt": PAIRS[2][0]}).json()
    ids = ids["tokens"]
    body = _score(http, server, ids, echo=True, logprobs=1, prompt_logprobs=3, max_tokens=1)
    (choice,) = body["choices"]
    prompt = choice["prompt_logprobs"]
    assert len(prompt) == len(ids) and prompt[0] is None
    echoed = choice["logprobs"]["token_logprobs"][: len(ids)]
    for token_id, entry, logprob in zip(ids[1:], prompt[1:], echoed[1:], strict=True):
        own = entry[str(token_id)]
        assert own["logprob"] == pytest.approx(logprob, abs=1e-6)
        assert own["rank"] >= 1 and isinstance(own["decoded_token"], str)
        assert 3 <= len(entry) <= 4
        ranks = sorted(item["rank"] for key, item in entry.items() if key != str(token_id))
        assert ranks == list(range(1, len(ranks) + 1))
    assert all(len(top) <= 1 for top in choice["logprobs"]["top_logprobs"][1:])
    alone = _score(http, server, ids, prompt_logprobs=0, max_tokens=1)
    assert [len(entry) for entry in alone["choices"][0]["prompt_logprobs"][1:]] == [1] * (
        len(ids) - 1
    )


@pytest.mark.parametrize(
    "fields", [{"prompt_logprobs": 1, "stream": True}, {"prompt_logprobs": -1}]
)
def test_prompt_logprobs_refused_streamed_or_negative(server: Server, http, fields):
    body = {"model": server.model, "prompt": "Hi", **fields}
    answer = http.post("/v1/completions", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == "prompt_logprobs"
