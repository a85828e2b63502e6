"""The TensorRT-LLM backend's pure parts, tested on every machine (no tensorrt_llm here).

Field names are TensorRT-LLM's LLM API: ``tensorrt_llm.SamplingParams``,
``sampling_params.GuidedDecodingParams``, ``executor.request.LoRARequest``,
``lora_helper.LoraConfig`` and ``tensorrt_llm.LLM``.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from engines import EngineUnavailable, load_engine
from engines.base import InvalidRequest, SamplingParams, StructuredOutput
from engines.trtllm import (
    SUPPORTED_SAMPLING,
    TRTLLMEngine,
    finish_reason,
    llm_kwargs,
    lora_config_kwargs,
    lora_request_args,
    to_trtllm_kwargs,
)
from lora.registry import Adapter

HAS_TRTLLM = importlib.util.find_spec("tensorrt_llm") is not None


def test_defaults_leave_tensorrt_llm_its_own():
    assert to_trtllm_kwargs(SamplingParams(max_tokens=16)) == {
        "max_tokens": 16,
        "n": 1,
        "ignore_eos": False,
        "include_stop_str_in_output": False,
        "skip_special_tokens": True,
        "spaces_between_special_tokens": True,
        "detokenize": True,
    }


def test_every_supported_field_is_mapped_by_its_tensorrt_llm_name():
    params = SamplingParams(
        max_tokens=8,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        min_p=0.05,
        seed=7,
        stop=("END",),
        stop_token_ids=(2,),
        presence_penalty=0.1,
        frequency_penalty=0.2,
        repetition_penalty=1.1,
        min_tokens=3,
        ignore_eos=True,
        logprobs=2,
        include_stop_str_in_output=True,
        skip_special_tokens=False,
        spaces_between_special_tokens=False,
        structured_output=StructuredOutput(json_schema={"type": "object"}),
    )
    assert params.fields_set() == SUPPORTED_SAMPLING
    assert to_trtllm_kwargs(params) == {
        "max_tokens": 8,
        "n": 1,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "min_p": 0.05,
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "repetition_penalty": 1.1,
        "min_tokens": 3,
        "logprobs": 2,
        "stop": ["END"],
        "stop_token_ids": [2],
        "ignore_eos": True,
        "include_stop_str_in_output": True,
        "skip_special_tokens": False,
        "spaces_between_special_tokens": False,
        "detokenize": True,
        "guided_decoding": {"json": {"type": "object"}},
    }


def test_json_object_mode_is_guided_decoding_json_object():
    params = SamplingParams(max_tokens=4, structured_output=StructuredOutput(json_object=True))
    assert to_trtllm_kwargs(params)["guided_decoding"] == {"json_object": True}


@pytest.mark.parametrize(
    "params, name",
    [
        (SamplingParams(max_tokens=4, logit_bias={5: 1.0}), "logit_bias"),
        (SamplingParams(max_tokens=4, prompt_logprobs=1), "prompt_logprobs"),
    ],
)
def test_fields_it_cannot_honour_are_refused_by_name(params, name):
    assert name not in SUPPORTED_SAMPLING  # so the frontend answers 400 before this
    with pytest.raises(InvalidRequest) as refused:
        to_trtllm_kwargs(params)
    assert refused.value.param == name


def test_adapter_entries_become_lora_request_arguments():
    adapter = Adapter(name="pirate", path=Path("/adapters/pirate"), int_id=3, rank=8)
    assert lora_request_args(adapter) == ("pirate", 3, "/adapters/pirate")
    assert lora_request_args(None) is None


def test_parallelism_and_lora_settings_reach_the_llm():
    engine = TRTLLMEngine(
        Path("/models/m"),
        "m",
        max_model_len=4096,
        tensor_parallel_size=4,
        pipeline_parallel_size=2,
        enable_lora=True,
        max_loras=2,
        max_lora_rank=32,
        lora_dirs=[Path("/adapters/a")],
        extra_llm_args={"kv_cache_config": {"free_gpu_memory_fraction": 0.8}},
    )
    assert llm_kwargs(engine) == {
        "model": "/models/m",
        "tensor_parallel_size": 4,
        "pipeline_parallel_size": 2,
        "guided_decoding_backend": "xgrammar",
        "kv_cache_config": {"free_gpu_memory_fraction": 0.8},
        "max_seq_len": 4096,
    }
    assert lora_config_kwargs(engine) == {
        "lora_dir": ["/adapters/a"],
        "max_lora_rank": 32,
        "max_loras": 2,
        "max_cpu_loras": 2,
    }
    assert lora_config_kwargs(TRTLLMEngine(Path("/m"), "m")) is None


def test_finish_reasons_map_to_ours():
    assert [finish_reason(r) for r in ("stop", "length", "cancelled", None)] == [
        "stop",
        "length",
        "abort",
        None,
    ]


@pytest.mark.skipif(HAS_TRTLLM, reason="tensorrt_llm is installed on this machine")
def test_selected_without_tensorrt_llm_it_fails_clearly_at_start():
    engine = load_engine("trtllm", model_path=Path("/models/m"), served_model_name="m")
    assert not engine.is_ready()
    with pytest.raises(EngineUnavailable, match="needs TensorRT-LLM"):
        asyncio.run(engine.start())
