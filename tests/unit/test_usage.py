"""The usage object: ``prompt_tokens_details`` always there, and cached tokens counted
once per prompt however many choices share it."""

from __future__ import annotations

from spec import assert_valid

from engines.base import Delta
from openai_frontend.choices import Choice, cached_tokens, usage


def test_usage_always_has_prompt_tokens_details():
    counts = usage(10, 3)
    assert counts["prompt_tokens_details"] == {"cached_tokens": 0}
    assert_valid(counts, "CompletionUsage")
    assert usage(10, 3, 8)["prompt_tokens_details"] == {"cached_tokens": 8}


def test_cached_tokens_count_each_prompt_once():
    # Two prompts, n=2: choices 0-1 share prompt 0, choices 2-3 share prompt 1.
    choices = [Choice() for _ in range(4)]
    for choice, cached in zip(choices, (16, 32, 0, 16), strict=True):
        choice.count(Delta("", [], 1, "stop", cached_prompt_tokens=cached))
    assert cached_tokens(choices, n=2) == 16 + 0


def test_the_largest_count_a_sequence_reported_is_kept():
    choice = Choice()
    choice.count(Delta("a", [1], 1, cached_prompt_tokens=16))
    choice.count(Delta("", [], 1, "stop"))
    assert choice.cached_tokens == 16
