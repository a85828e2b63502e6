"""Completions' ``echo`` with ``logprobs`` in OpenAI's legacy shape, as
lm-evaluation-harness's ``local-completions`` model parses it (its own parser)."""

from __future__ import annotations

import pytest

from engines.base import TokenLogprob
from openai_frontend.logprobs import echoed_completion_logprobs, vllm_prompt_logprobs, with_top


def test_the_prompt_comes_first_its_first_token_null_and_lm_eval_reads_it():
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    prompt = [None, TokenLogprob(2, " b", -1.5, ((2, " b", -1.5),))]
    prompt.append(TokenLogprob(3, " c", -0.25, ((9, " z", -0.1), (3, " c", -0.25))))
    generated = [TokenLogprob(4, " d", -0.5, ((4, " d", -0.5),))]
    logprobs = echoed_completion_logprobs("a", prompt, generated)
    assert logprobs == {
        "tokens": ["a", " b", " c", " d"],
        "token_logprobs": [None, -1.5, -0.25, -0.5],
        "top_logprobs": [None, {" b": -1.5}, {" z": -0.1, " c": -0.25}, {" d": -0.5}],
        "text_offset": [0, 1, 3, 5],
    }
    body = {"choices": [{"index": 0, "logprobs": logprobs}]}
    # Context "a" (1 token), continuation " b c": lm-eval sums prompt positions 1..2.
    ((loglikelihood, greedy),) = LocalCompletionsAPI.parse_logprobs(body, ctxlens=[1])
    assert loglikelihood == pytest.approx(-1.75)
    assert greedy is False  # " z" beat " c"


def test_vllms_prompt_logprobs_shape_puts_the_prompt_token_first_with_its_rank():
    second = TokenLogprob(3, " c", -0.25, ((9, " z", -0.1), (3, " c", -0.25)), rank=2)
    third = TokenLogprob(5, " e", -4.0, ((9, " z", -0.2), (7, " y", -0.3)), rank=17)
    assert vllm_prompt_logprobs([None, second, third], 1) == [
        None,
        {
            "3": {"logprob": -0.25, "rank": 2, "decoded_token": " c"},
            "9": {"logprob": -0.1, "rank": 1, "decoded_token": " z"},
        },
        {
            "5": {"logprob": -4.0, "rank": 17, "decoded_token": " e"},
            "9": {"logprob": -0.2, "rank": 1, "decoded_token": " z"},
        },
    ]
    # The token among its alternatives is listed once, with its own rank.
    assert list(vllm_prompt_logprobs([second], 2)[0]) == ["3", "9"]


def test_each_field_shows_its_own_count_of_alternatives():
    scored = [None, TokenLogprob(3, " c", -0.25, ((9, " z", -0.1), (3, " c", -0.25)))]
    assert with_top(scored, 1)[1].top == ((9, " z", -0.1),)
    assert with_top(scored, 0)[1].top == ()
    assert with_top(scored, 5) == scored
