"""Sampling: layered defaults, context budget, and refusal of what an engine cannot do."""

from __future__ import annotations

import pytest

from engines.base import SamplingParams, StructuredOutput
from engines.vllm import SUPPORTED_SAMPLING, to_vllm_kwargs
from openai_frontend.errors import APIError
from openai_frontend.sampling import build_sampling, check_overrides, token_budget
from openai_frontend.schemas.completions import CompletionRequest


def _request(**fields) -> CompletionRequest:
    return CompletionRequest(model="m", prompt="x", **fields)


def test_request_wins_over_defaults():
    params = build_sampling(
        _request(temperature=0.2),
        max_tokens=5,
        defaults={"temperature": 0.7, "top_p": 0.9},
        supported=SUPPORTED_SAMPLING,
    )
    assert params.temperature == 0.2
    assert params.top_p == 0.9


def test_top_p_zero_means_greedy():
    params = build_sampling(
        _request(top_p=0), max_tokens=5, defaults={}, supported=SUPPORTED_SAMPLING
    )
    assert (params.temperature, params.top_p) == (0.0, 1.0)


def test_unsupported_field_is_rejected_by_name():
    with pytest.raises(APIError) as caught:
        build_sampling(
            _request(min_p=0.1), max_tokens=5, defaults={}, supported=frozenset({"temperature"})
        )
    assert caught.value.param == "min_p"
    assert caught.value.status == 400


def test_no_max_tokens_means_context_left():
    assert token_budget(None, 100, 8192, "max_tokens") == 8092


def test_context_overflow_names_numbers():
    with pytest.raises(APIError) as caught:
        token_budget(9000, 100, 8192, "max_tokens")
    assert "8192" in caught.value.message and "9100" in caught.value.message


def test_prompt_filling_context_is_refused():
    with pytest.raises(APIError):
        token_budget(None, 8192, 8192, "max_tokens")


def test_overrides_must_name_real_fields():
    assert check_overrides({"temperature": 0.5}) == {"temperature": 0.5}
    with pytest.raises(ValueError, match="tempreature"):
        check_overrides({"tempreature": 0.5})


def test_vllm_mapping_is_one_to_one():
    params = SamplingParams(
        max_tokens=7,
        temperature=0.5,
        top_k=-1,
        stop=("a", "b"),
        stop_token_ids=(3,),
        logit_bias={5: 10.0},
        prompt_logprobs=2,
        structured_output=StructuredOutput(json_schema={"type": "object"}),
    )
    kwargs = to_vllm_kwargs(params)
    assert kwargs["prompt_logprobs"] == 2
    assert kwargs["max_tokens"] == 7
    assert kwargs["temperature"] == 0.5
    assert kwargs["top_k"] == -1
    assert kwargs["stop"] == ["a", "b"]
    assert kwargs["stop_token_ids"] == [3]
    assert kwargs["logit_bias"] == {5: 10.0}
    assert kwargs["structured_outputs"] == {"json": {"type": "object"}}
    assert "top_p" not in kwargs, "unset fields keep the engine's default"


def test_fields_set_lists_non_defaults():
    assert SamplingParams(max_tokens=1).fields_set() == set()
    assert SamplingParams(max_tokens=1, seed=3, ignore_eos=True).fields_set() == {
        "seed",
        "ignore_eos",
    }


def test_three_layers_model_then_server_then_request(tmp_path):
    from openai_frontend.sampling import read_generation_defaults

    (tmp_path / "generation_config.json").write_text(
        '{"temperature": 0.6, "top_p": 0.9, "top_k": 20, "eos_token_id": 2}'
    )
    model_defaults = read_generation_defaults(tmp_path)
    assert model_defaults == {"temperature": 0.6, "top_p": 0.9, "top_k": 20}
    layered = {**model_defaults, **check_overrides({"top_k": 40})}
    params = build_sampling(
        _request(temperature=0.1), max_tokens=5, defaults=layered, supported=SUPPORTED_SAMPLING
    )
    assert (params.temperature, params.top_p, params.top_k) == (0.1, 0.9, 40)
