"""TensorRT-LLM through its LLM API: ``tensorrt_llm.LLM.generate_async(streaming=True)``.

TensorRT-LLM cannot be installed on the machines this project is built on (PyPI's
package is a placeholder that downloads from NVIDIA at build time), so this module
imports cleanly without it: ``tensorrt_llm`` is imported only in :meth:`start`, which
fails with a clear message when it is missing. The mapping from our neutral sampling
object and adapter entries to TensorRT-LLM's keyword arguments is pure and unit-tested
everywhere (tests/unit/test_trtllm_mapping.py); tests/engines/ runs the conformance
suite against this engine wherever ``tensorrt_llm`` imports and a GPU is present.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from engines import EngineUnavailable
from engines.base import (
    ALL_SAMPLING,
    Delta,
    EngineDead,
    GenerateRequest,
    InvalidRequest,
    ModelInfo,
    SamplingParams,
    TokenLogprob,
)
from engines.hf_tokenizer import HFTokenizer
from engines.sampling_map import guide, refuse_undeclared, sampling_kwargs

#: What ``tensorrt_llm.SamplingParams`` can honour. Not here, so rejected with a 400:
#: ``logit_bias`` (TensorRT-LLM takes a dense ``embedding_bias`` tensor, not a sparse
#: per-token map) and ``prompt_logprobs`` (the frontend does not offer it for any engine).
#: ``n`` and ``best_of`` are fanned out by the frontend into one request per choice.
SUPPORTED_SAMPLING = ALL_SAMPLING - {"logit_bias", "prompt_logprobs"}


def to_trtllm_kwargs(params: SamplingParams) -> dict:
    """Keyword arguments for ``tensorrt_llm.SamplingParams``; pure, so tested without it.

    ``None`` fields are left out so TensorRT-LLM's runtime defaults apply. Structured
    output comes back as ``guided_decoding`` keyword arguments for
    ``tensorrt_llm.sampling_params.GuidedDecodingParams``.
    """
    refuse_undeclared(params, SUPPORTED_SAMPLING, "TensorRT-LLM")
    kwargs = {**sampling_kwargs(params), "n": 1, "detokenize": True}
    structured = guide(params)
    if structured is not None:
        kwargs["guided_decoding"] = structured
    return kwargs


def lora_request_args(adapter) -> tuple[str, int, str] | None:
    """``LoRARequest(lora_name, lora_int_id, lora_path)`` arguments for a registry entry."""
    if adapter is None:
        return None
    return adapter.name, adapter.int_id, str(adapter.path)


def llm_kwargs(engine: TRTLLMEngine) -> dict:
    """Keyword arguments for ``tensorrt_llm.LLM``; LoRA settings are built separately."""
    kwargs: dict = {
        "model": str(engine.model_path),
        "tensor_parallel_size": engine.tensor_parallel_size,
        "pipeline_parallel_size": engine.pipeline_parallel_size,
        "guided_decoding_backend": "xgrammar",
        **engine.extra_llm_args,
    }
    if engine.max_model_len is not None:
        kwargs["max_seq_len"] = engine.max_model_len
    return kwargs


def lora_config_kwargs(engine: TRTLLMEngine) -> dict | None:
    """Keyword arguments for ``tensorrt_llm.lora_helper.LoraConfig``, or None."""
    if not engine.enable_lora:
        return None
    return {
        "lora_dir": [str(path) for path in engine.lora_dirs],
        "max_lora_rank": engine.max_lora_rank,
        "max_loras": engine.max_loras,
        "max_cpu_loras": engine.max_cpu_loras or engine.max_loras,
    }


def finish_reason(reason: str | None) -> str | None:
    """TensorRT-LLM says "stop", "length" or "cancelled"; ours are stop/length/abort."""
    if reason is None:
        return None
    return {"cancelled": "abort", "timeout": "abort"}.get(reason, reason)


@dataclass
class TRTLLMEngine:
    """One model served by an in-process ``tensorrt_llm.LLM``."""

    model_path: Path
    served_model_name: str
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    enable_lora: bool = False
    max_loras: int = 4
    max_lora_rank: int = 16
    max_cpu_loras: int | None = None
    #: Adapter folders known at start; TensorRT-LLM reads its LoRA layout from them.
    lora_dirs: list[Path] = field(default_factory=list)
    #: Anything else for ``tensorrt_llm.LLM(...)`` (from a --config file's engine_args).
    extra_llm_args: dict = field(default_factory=dict)
    supported_sampling: frozenset[str] = SUPPORTED_SAMPLING
    in_process = True

    def __post_init__(self) -> None:
        self._llm = None
        self._tokenizer: HFTokenizer | None = None
        self._info: ModelInfo | None = None
        self._running: dict[str, object] = {}
        self._failed = False

    @property
    def supports_lora(self) -> bool:
        return self.enable_lora

    async def start(self) -> None:
        try:
            import tensorrt_llm  # noqa: F401
        except ImportError as exc:
            raise EngineUnavailable(
                "the 'trtllm' engine needs TensorRT-LLM, which is not installed here "
                f"({exc}). Install it on a machine with an NVIDIA GPU: see the README, "
                "'TensorRT-LLM'."
            ) from None
        self._llm = await asyncio.to_thread(self._build)
        self._tokenizer = await asyncio.to_thread(HFTokenizer, self.model_path)
        self._info = ModelInfo(
            id=self.served_model_name,
            max_model_len=self.max_model_len or self._llm.args.max_seq_len,
            path=self.model_path,
            created=int(time.time()),
        )

    def _build(self):
        from tensorrt_llm import LLM

        kwargs = llm_kwargs(self)
        lora = lora_config_kwargs(self)
        if lora is not None:
            from tensorrt_llm.lora_helper import LoraConfig

            kwargs["lora_config"] = LoraConfig(**lora)
        return LLM(**kwargs)

    def is_ready(self) -> bool:
        return self._llm is not None and not self._failed

    def model(self) -> ModelInfo:
        if self._info is None:
            raise RuntimeError("engine not started")
        return self._info

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Delta]:
        from tensorrt_llm import SamplingParams as TRTSamplingParams
        from tensorrt_llm.sampling_params import GuidedDecodingParams

        kwargs = to_trtllm_kwargs(request.sampling)
        if "guided_decoding" in kwargs:
            kwargs["guided_decoding"] = GuidedDecodingParams(**kwargs["guided_decoding"])
        try:
            params = TRTSamplingParams(**kwargs)
            promise = self._llm.generate_async(
                request.prompt_token_ids,
                sampling_params=params,
                lora_request=self._lora_request(request.adapter),
                streaming=True,
            )
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(str(exc)) from None
        self._running[request.request_id] = promise
        completion_tokens = 0
        try:
            async for result in promise:
                output = result.outputs[0]
                new_ids = list(output.token_ids_diff)
                completion_tokens += len(new_ids)
                yield Delta(
                    text=output.text_diff,
                    token_ids=new_ids,
                    completion_tokens=completion_tokens,
                    finish_reason=finish_reason(output.finish_reason) if result.finished else None,
                    logprobs=self._logprobs(output, new_ids) if request.sampling.logprobs else None,
                )
        except RuntimeError as exc:  # tensorrt_llm.executor.RequestError and kin
            self._failed = "executor" in type(exc).__module__ and not self._llm._check_health()
            raise (EngineDead(str(exc)) if self._failed else InvalidRequest(str(exc))) from exc
        finally:
            self._running.pop(request.request_id, None)
            if not promise.finished:
                promise.abort()

    def _lora_request(self, adapter):
        args = lora_request_args(adapter)
        if args is None:
            return None
        from tensorrt_llm.executor.request import LoRARequest

        return LoRARequest(*args)

    def _logprobs(self, output, new_ids: list[int]) -> list[TokenLogprob]:
        """TensorRT-LLM's per-token ``{token_id: Logprob}`` maps as neutral records."""
        text_of = self._tokenizer.token_text
        records = []
        for token_id, candidates in zip(new_ids, output.logprobs_diff, strict=False):
            ranked = sorted(candidates.items(), key=lambda item: item[1].rank or 0)
            top = tuple((tid, text_of(tid), lp.logprob) for tid, lp in ranked)
            records.append(
                TokenLogprob(token_id, text_of(token_id), candidates[token_id].logprob, top)
            )
        return records

    async def abort(self, request_id: str) -> None:
        promise = self._running.pop(request_id, None)
        if promise is not None:
            promise.abort()

    def num_unfinished_requests(self) -> int:
        return len(self._running)

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens)

    def detokenize(self, token_ids: list[int]) -> str:
        return self._tokenizer.decode(token_ids)

    async def add_adapter(self, adapter) -> None:
        """TensorRT-LLM loads an adapter on the first request that names it."""

    async def remove_adapter(self, adapter) -> None:
        """Adapters leave TensorRT-LLM's LRU cache on their own (max_cpu_loras)."""

    async def loaded_adapter_ids(self) -> list[int]:
        return []

    async def shutdown(self) -> None:
        if self._llm is not None:
            await asyncio.to_thread(self._llm.shutdown)
            self._llm = None
