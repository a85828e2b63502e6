"""The TensorRT-LLM backend, tested on every machine (no tensorrt_llm here).

Keyword names are checked against TensorRT-LLM's own, read from its source into
tests/fixtures/trtllm_api.json (each entry names its file and commit). Behaviour that
needs the library runs against ``scripted_trtllm``, a stand-in that accepts exactly
those names and plays back scripted results.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

import pytest
import scripted_trtllm
from scripted_trtllm import Logprob, Step, accepted, unknown

from engines import EngineUnavailable, load_engine
from engines.base import (
    EngineDead,
    GenerateRequest,
    InvalidRequest,
    SamplingParams,
    StructuredOutput,
)
from engines.trtllm import (
    SUPPORTED_SAMPLING,
    TRTLLMEngine,
    context_length,
    finish_reason,
    llm_kwargs,
    lora_config_kwargs,
    lora_request_args,
    to_trtllm_kwargs,
    top_alternatives,
)
from engines.trtllm_lora import ALL_DENSE_MODULES, lora_target_modules
from lora.registry import Adapter
from openai_frontend.cli import engine_kwargs
from openai_frontend.config import ServerConfig
from openai_frontend.gateway_config import ConfigError, per_model_configs, read_config
from openai_frontend.generation import choice_requests

HAS_TRTLLM = importlib.util.find_spec("tensorrt_llm") is not None

EVERY_FIELD = SamplingParams(
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


def adapter_dir(root: Path, name: str, targets) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "target_modules": targets}))
    return folder


def every_option_engine(tmp_path: Path) -> TRTLLMEngine:
    return TRTLLMEngine(
        Path("/models/m"),
        "m",
        max_model_len=4096,
        dtype="bfloat16",
        enforce_eager=True,
        tensor_parallel_size=4,
        pipeline_parallel_size=2,
        enable_lora=True,
        max_loras=2,
        max_lora_rank=32,
        lora_dirs=[adapter_dir(tmp_path, "a", ["q_proj", "v_proj"])],
        extra_llm_args={"kv_cache_config": {"free_gpu_memory_fraction": 0.8}},
    )


# --- every keyword we pass is one TensorRT-LLM declares (fixture from its source) ---


def test_every_sampling_keyword_exists_in_tensorrt_llm():
    kwargs = to_trtllm_kwargs(EVERY_FIELD)
    # A structural tag never comes with structured_output: it is checked alone below.
    assert EVERY_FIELD.fields_set() | {"structural_tag"} == SUPPORTED_SAMPLING
    assert unknown(kwargs, "SamplingParams") == set()
    assert unknown(kwargs["guided_decoding"], "GuidedDecodingParams") == set()
    for alone in (
        SamplingParams(max_tokens=4, structured_output=StructuredOutput(json_object=True)),
        SamplingParams(max_tokens=4, structural_tag={"type": "structural_tag", "format": {}}),
    ):
        assert unknown(to_trtllm_kwargs(alone)["guided_decoding"], "GuidedDecodingParams") == set()


def test_every_llm_and_lora_keyword_exists_in_tensorrt_llm(tmp_path):
    engine = every_option_engine(tmp_path)
    assert unknown(llm_kwargs(engine), "LLM", "BaseLlmArgs", "TorchLlmArgs") == set()
    assert unknown(lora_config_kwargs(engine), "LoraConfig") == set()
    names = scripted_trtllm.API["LoRARequest"]["names"]
    adapter = Adapter(name="pirate", path=Path("/adapters/pirate"), int_id=3, rank=8)
    assert dict(zip(names, lora_request_args(adapter), strict=False)) == {
        "lora_name": "pirate",
        "lora_int_id": 3,
        "lora_path": "/adapters/pirate",
    }


def test_the_name_check_catches_a_misspelled_keyword():
    assert unknown({"max_token": 8, "temperature": 1.0}, "SamplingParams") == {"max_token"}
    assert unknown({"tensor_paralel_size": 2}, "LLM", "BaseLlmArgs", "TorchLlmArgs")
    assert "lora_target_module" not in accepted("LoraConfig")


def test_the_fixture_names_its_source_revisions():
    for api in scripted_trtllm.API.values():
        assert len(api["commit"]) == 40 and api["path"].startswith("tensorrt_llm/")
        assert api["names"]


# --- sampling ---


def test_unset_sampling_samples_at_temperature_one_like_vllm():
    """TensorRT-LLM decodes greedily with temperature, top_p and top_k all unset;
    trtllm-serve sends 1.0 and 1.0 (tensorrt_llm/serve/openai_protocol.py)."""
    kwargs = to_trtllm_kwargs(SamplingParams(max_tokens=16))
    assert (kwargs["temperature"], kwargs["top_p"]) == (1.0, 1.0)
    assert "top_k" not in kwargs


def test_explicit_sampling_values_win_over_the_defaults():
    kwargs = to_trtllm_kwargs(SamplingParams(max_tokens=4, temperature=0.0, top_p=0.5))
    assert (kwargs["temperature"], kwargs["top_p"]) == (0.0, 0.5)


def test_unseeded_choices_each_get_their_own_seed():
    """Without a seed, TensorRT-LLM's runtime seed is 0 for every choice: n identical."""
    choices = choice_requests("r", [[1, 2, 3]], SamplingParams(max_tokens=4), 4, None)
    seeds = [to_trtllm_kwargs(choice.sampling)["seed"] for choice in choices]
    assert len(set(seeds)) == 4
    assert all(0 <= seed < 2**63 for seed in seeds)


def test_seeded_choices_keep_seed_plus_index():
    choices = choice_requests("r", [[1]], SamplingParams(max_tokens=4, seed=7), 3, None)
    assert [to_trtllm_kwargs(choice.sampling)["seed"] for choice in choices] == [7, 8, 9]


def test_the_rest_maps_by_its_tensorrt_llm_name():
    assert to_trtllm_kwargs(EVERY_FIELD) == {
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


@pytest.mark.parametrize(
    "params, name",
    [
        (SamplingParams(max_tokens=4, logit_bias={5: 1.0}), "logit_bias"),
        (SamplingParams(max_tokens=4, prompt_logprobs=1), "prompt_logprobs"),
        (SamplingParams(max_tokens=4, priority=-1), "priority"),
    ],
)
def test_fields_it_cannot_honour_are_refused_by_name(params, name):
    assert name not in SUPPORTED_SAMPLING  # so the frontend answers 400 before this
    with pytest.raises(InvalidRequest) as refused:
        to_trtllm_kwargs(params)
    assert refused.value.param == name


# --- logprobs ---


def test_logprobs_without_top_logprobs_asks_tensorrt_llm_for_one():
    """logprobs=0 is "off" to TensorRT-LLM (return_log_probs = bool(logprobs))."""
    assert to_trtllm_kwargs(SamplingParams(max_tokens=4, logprobs=0))["logprobs"] == 1
    assert to_trtllm_kwargs(SamplingParams(max_tokens=4, logprobs=3))["logprobs"] == 3


def test_top_alternatives_drop_the_sampled_token_tensorrt_llm_adds():
    """With k=2 TensorRT-LLM returns the top 2 plus the sampled token (rank 5)."""
    candidates = {11: Logprob(-0.1, 1), 12: Logprob(-0.5, 2), 99: Logprob(-3.0, 5)}
    assert top_alternatives(candidates, 2) == [(11, -0.1), (12, -0.5)]
    assert top_alternatives(candidates, 0) == []
    unranked = {7: Logprob(-2.0), 8: Logprob(-0.3), 9: Logprob(-1.0)}
    assert top_alternatives(unranked, 2) == [(8, -0.3), (9, -1.0)]


# --- LoRA ---


def test_two_adapters_give_lora_target_modules_tensorrt_llm_needs(tmp_path):
    """With two or more lora_dir TensorRT-LLM asserts lora_target_modules is non-empty
    (tensorrt_llm/_torch/pyexecutor/_util.py, create_py_executor_instance)."""
    dirs = [
        adapter_dir(tmp_path, "a", ["q_proj", "v_proj"]),
        adapter_dir(tmp_path, "b", ["model.layers.0.mlp.down_proj", "q_proj"]),
    ]
    engine = TRTLLMEngine(Path("/m"), "m", enable_lora=True, lora_dirs=dirs)
    lora = lora_config_kwargs(engine)
    assert lora["lora_dir"] == [str(d) for d in dirs]
    assert lora["lora_target_modules"] == ["attn_q", "attn_v", "mlp_4h_to_h"]


def test_management_only_sizes_for_every_dense_module(tmp_path):
    engine = TRTLLMEngine(Path("/m"), "m", enable_lora=True, lora_runtime_loads=True)
    assert lora_config_kwargs(engine)["lora_target_modules"] == list(ALL_DENSE_MODULES)
    assert lora_config_kwargs(engine)["lora_dir"] == []


def test_a_regex_target_needs_every_module_and_an_unmappable_one_is_refused(tmp_path):
    assert lora_target_modules([adapter_dir(tmp_path, "re", ".*proj")], False) == list(
        ALL_DENSE_MODULES
    )
    with pytest.raises(ValueError, match="lm_head"):
        lora_target_modules([adapter_dir(tmp_path, "head", ["lm_head"])], False)


def test_adapters_from_a_modules_file_reach_tensorrt_llm(tmp_path):
    a = adapter_dir(tmp_path, "a", ["q_proj"])
    b = adapter_dir(tmp_path, "b", ["v_proj"])
    modules_file = tmp_path / "loras.json"
    modules_file.write_text(json.dumps([{"name": "b", "path": str(b)}]))
    config = ServerConfig(
        model_path=tmp_path,
        served_model_name="m",
        engine="trtllm",
        loras=(("a", str(a)),),
        lora_modules_file=str(modules_file),
    )
    assert engine_kwargs(config, enable_lora=True)["lora_dirs"] == [a, b]


def test_lora_off_means_no_lora_config():
    assert lora_config_kwargs(TRTLLMEngine(Path("/m"), "m")) is None
    assert "lora_config" not in llm_kwargs(TRTLLMEngine(Path("/m"), "m"))


# --- LLM(...) arguments ---


def test_dtype_eager_parallelism_and_extra_args_reach_the_llm(tmp_path):
    kwargs = llm_kwargs(every_option_engine(tmp_path))
    assert kwargs["dtype"] == "bfloat16"
    assert kwargs["cuda_graph_config"] is None  # enforce_eager: no CUDA graphs
    assert (kwargs["tensor_parallel_size"], kwargs["pipeline_parallel_size"]) == (4, 2)
    assert kwargs["max_seq_len"] == 4096
    assert kwargs["kv_cache_config"] == {"free_gpu_memory_fraction": 0.8}
    assert kwargs["lora_config"]["lora_target_modules"] == ["attn_q", "attn_v"]
    assert "cuda_graph_config" not in llm_kwargs(TRTLLMEngine(Path("/m"), "m"))


def test_enforce_eager_and_a_cuda_graph_config_conflict():
    engine = TRTLLMEngine(
        Path("/m"), "m", enforce_eager=True, extra_llm_args={"cuda_graph_config": {}}
    )
    with pytest.raises(ValueError, match="enforce_eager"):
        llm_kwargs(engine)


def test_the_cli_passes_dtype_eager_and_config_llm_args(tmp_path):
    config = ServerConfig(
        model_path=tmp_path,
        served_model_name="m",
        engine="trtllm",
        dtype="float16",
        enforce_eager=False,
        llm_args={"kv_cache_config": {"free_gpu_memory_fraction": 0.5}},
    )
    kwargs = engine_kwargs(config, enable_lora=False)
    engine = TRTLLMEngine(**kwargs)
    assert (engine.dtype, engine.enforce_eager) == ("float16", False)
    assert llm_kwargs(engine)["kv_cache_config"] == {"free_gpu_memory_fraction": 0.5}


def test_a_config_files_llm_args_fill_extra_llm_args_for_trtllm_only(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"models: [{{name: a, engine: trtllm, model: {tmp_path}, "
        "engine_args: {llm_args: {kv_cache_config: {free_gpu_memory_fraction: 0.8}}}}]"
    )
    (config,) = per_model_configs(read_config(path), ServerConfig(tmp_path, "x"), None)
    engine = TRTLLMEngine(**engine_kwargs(config, enable_lora=False))
    assert engine.extra_llm_args == {"kv_cache_config": {"free_gpu_memory_fraction": 0.8}}
    path.write_text("models: [{name: a, engine_args: {llm_args: {x: 1}}}]")
    with pytest.raises(ConfigError, match="TensorRT-LLM engine argument"):
        read_config(path)


def test_context_length_is_always_an_int(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 8192}))
    assert context_length(None, None, tmp_path) == 8192
    assert context_length(None, 2048, tmp_path) == 2048
    assert context_length(1024, 2048, tmp_path) == 1024
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EngineUnavailable, match="--max-model-len"):
        context_length(None, None, tmp_path)


def test_finish_reasons_map_to_ours():
    assert [finish_reason(r) for r in ("stop", "length", "cancelled", None)] == [
        "stop",
        "length",
        "abort",
        None,
    ]


# --- the engine against scripted_trtllm ---


class CharTokenizer:
    """Stands in for the model's tokenizer: token i is the text "<i>"."""

    def __init__(self, model_path) -> None:
        pass

    def token_text(self, token_id: int) -> str:
        return f"<{token_id}>"


@pytest.fixture
def started(tmp_path, monkeypatch):
    """A TRTLLMEngine started on scripted_trtllm, for a model declaring 8192 tokens."""
    trtllm = scripted_trtllm.install(monkeypatch)
    monkeypatch.setattr("engines.trtllm.HFTokenizer", CharTokenizer)
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 8192}))
    engine = TRTLLMEngine(tmp_path, "m")
    asyncio.run(engine.start())
    return engine, trtllm.LLM


def run_request(engine, sampling: SamplingParams, steps: list, take=None, adapter=None):
    """Deltas of one request playing ``steps``; ``take`` closes the stream early."""
    scripted_trtllm.LLM.scripts.append(steps)

    async def go():
        deltas = []
        stream = engine.generate(GenerateRequest("r1", [1, 2, 3], sampling, adapter))
        async for delta in stream:
            deltas.append(delta)
            if take is not None and len(deltas) == take:
                break
        await stream.aclose()
        counted = engine.num_unfinished_requests()
        for _ in range(5):
            await asyncio.sleep(0)
        return deltas, counted, engine.num_unfinished_requests()

    return asyncio.run(go())


def test_model_info_has_an_int_context_length_without_max_model_len(started):
    engine, llm = started
    assert llm.built[0].kwargs["model"] == str(engine.model_path)
    assert engine.model().max_model_len == 8192


def test_logprobs_true_without_top_logprobs_returns_logprobs(started):
    engine, _ = started
    steps = [Step([5], "a", [{5: Logprob(-0.2, 1)}], finish_reason="length")]
    deltas, _, _ = run_request(engine, SamplingParams(max_tokens=1, logprobs=0), steps)
    (record,) = deltas[0].logprobs
    assert (record.token_id, record.logprob, record.top) == (5, -0.2, ())


def test_top_logprobs_k_returns_k_alternatives(started):
    engine, llm = started
    candidates = {11: Logprob(-0.1, 1), 12: Logprob(-0.5, 2), 99: Logprob(-3.0, 5)}
    steps = [Step([99], "z", [candidates], finish_reason="length")]
    deltas, _, _ = run_request(engine, SamplingParams(max_tokens=1, logprobs=2), steps)
    (record,) = deltas[0].logprobs
    assert record.logprob == -3.0
    assert [tid for tid, _, _ in record.top] == [11, 12]
    assert llm.built[0].submitted[0][1].logprobs == 2


def test_cached_tokens_come_from_the_generation_result(started):
    engine, _ = started
    scripted_trtllm.LLM.cached_tokens_next = 2
    steps = [Step([5], "a"), Step([6], "b", finish_reason="length")]
    deltas, _, _ = run_request(engine, SamplingParams(max_tokens=2), steps)
    assert deltas[-1].cached_prompt_tokens == 2


def test_an_aborted_request_counts_until_tensorrt_llm_confirms_it(started):
    engine, llm = started
    steps = [Step([5], "a"), Step([6], "b"), Step([7], "c", finish_reason="length")]
    deltas, right_after_close, later = run_request(engine, SamplingParams(max_tokens=3), steps, 1)
    assert len(deltas) == 1 and llm.built[0].results[0].aborted
    assert right_after_close == 1  # the executor has not answered the cancel yet
    assert later == 0 and llm.built[0].results[0].finished


def test_a_finished_request_is_not_counted(started):
    engine, _ = started
    _, counted, _ = run_request(
        engine, SamplingParams(max_tokens=1), [Step([5], finish_reason="stop")]
    )
    assert counted == 0


def test_a_request_error_is_a_400_and_the_engine_serves_on(started):
    engine, _ = started
    with pytest.raises(InvalidRequest, match="bad adapter"):
        run_request(
            engine, SamplingParams(max_tokens=1), [scripted_trtllm.RequestError("bad adapter")]
        )
    assert engine.is_ready()


def test_any_other_error_marks_the_engine_dead_through_public_api_only(started):
    """scripted_trtllm has no private ``_check_health``: the verdict comes from the
    exception type alone (TensorRT-LLM shuts the LLM down before raising it)."""
    engine, _ = started
    with pytest.raises(EngineDead):
        run_request(engine, SamplingParams(max_tokens=1), [RuntimeError("worker died")])
    assert not engine.is_ready()


def test_a_refusal_at_submit_is_a_400_and_a_shut_down_llm_is_dead(started):
    engine, llm = started
    llm.refuse_next = ValueError("prompt too long")
    with pytest.raises(InvalidRequest, match="prompt too long"):
        run_request(engine, SamplingParams(max_tokens=1), [])
    assert engine.is_ready() and engine.num_unfinished_requests() == 0
    llm.refuse_next = RuntimeError("LLM is shutting down")
    with pytest.raises(EngineDead):
        run_request(engine, SamplingParams(max_tokens=1), [])
    assert not engine.is_ready()


def test_an_adapter_request_names_its_lora(started):
    engine, llm = started
    adapter = Adapter(name="pirate", path=Path("/adapters/pirate"), int_id=3, rank=8)
    run_request(
        engine, SamplingParams(max_tokens=1), [Step([5], finish_reason="stop")], None, adapter
    )
    lora = llm.built[0].submitted[0][2]
    assert (lora.lora_name, lora.lora_int_id, lora.lora_path) == ("pirate", 3, "/adapters/pirate")


@pytest.mark.skipif(HAS_TRTLLM, reason="tensorrt_llm is installed on this machine")
def test_selected_without_tensorrt_llm_it_fails_clearly_at_start():
    engine = load_engine("trtllm", model_path=Path("/models/m"), served_model_name="m")
    assert not engine.is_ready()
    with pytest.raises(EngineUnavailable, match="needs TensorRT-LLM"):
        asyncio.run(engine.start())
