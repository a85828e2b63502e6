"""TensorRT-LLM through its LLM API: ``tensorrt_llm.LLM.generate_async(streaming=True)``.

TensorRT-LLM cannot be installed on the machines this project is built on (PyPI's
package is a placeholder that downloads from NVIDIA at build time), so this module
imports cleanly without it: ``tensorrt_llm`` is imported only in :meth:`start`, which
fails with a clear message when it is missing. Everything we hand TensorRT-LLM is built
by pure functions here, unit-tested everywhere against keyword names read from its source
(tests/fixtures/trtllm_api.json, tests/unit/test_trtllm_mapping.py); tests/engines/ runs
the conformance suite against this engine wherever ``tensorrt_llm`` imports and a GPU is
present.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable
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
from engines.hf_tokenizer import MODEL_LOADING, HFTokenizer
from engines.sampling_map import guide, refuse_undeclared, sampling_kwargs
from engines.trtllm_lora import lora_target_modules

#: What ``tensorrt_llm.SamplingParams`` can honour. Not here, so rejected with a 400:
#: ``logit_bias`` (TensorRT-LLM takes a dense ``embedding_bias`` tensor, not a sparse
#: per-token map), ``prompt_logprobs`` (not mapped yet: completions' ``echo`` with
#: ``logprobs`` is a 400 here), ``priority`` (not mapped yet onto TensorRT-LLM's
#: scheduler) and ``constraint_after_reasoning`` (guided decoding constrains from the
#: first token: a reasoning model's constrained request has its thinking turned off
#: instead). ``n`` and
#: ``best_of`` are fanned out by the frontend into one request per choice.
SUPPORTED_SAMPLING = ALL_SAMPLING - {
    "logit_bias",
    "prompt_logprobs",
    "priority",
    "constraint_after_reasoning",
}

#: With temperature, top_p and top_k all unset TensorRT-LLM decodes greedily
#: (``SamplingParams.params_imply_greedy_decoding``); vLLM samples at temperature 1.
#: These are trtllm-serve's own defaults (``tensorrt_llm/serve/openai_protocol.py``).
SAMPLE_BY_DEFAULT = {"temperature": 1.0, "top_p": 1.0}

#: Seconds an aborted request may take to come back "cancelled" from the executor; it
#: counts as unfinished meanwhile.
SETTLE_SECONDS = 30.0


def fresh_seed() -> int:
    """A seed for a request that has none.

    TensorRT-LLM's runtime seed defaults to 0, so every unseeded choice of one request
    would sample the same text; vLLM draws a fresh one per request. 63 bits fit the
    runtime's unsigned 64-bit seed and any signed conversion on the way.
    """
    return secrets.randbits(63)


def to_trtllm_kwargs(params: SamplingParams, seed: Callable[[], int] = fresh_seed) -> dict:
    """Keyword arguments for ``tensorrt_llm.SamplingParams``; pure, so tested without it.

    Structured output comes back as ``guided_decoding`` keyword arguments for
    ``tensorrt_llm.sampling_params.GuidedDecodingParams``.
    """
    refuse_undeclared(params, SUPPORTED_SAMPLING, "TensorRT-LLM")
    kwargs = {**SAMPLE_BY_DEFAULT, **sampling_kwargs(params), "n": 1, "detokenize": True}
    if params.seed is None:
        kwargs["seed"] = seed()
    if params.logprobs is not None:
        # TensorRT-LLM reads logprobs=0 as "off" (OutputConfig.return_log_probs =
        # bool(logprobs)); ask for one and keep none of the alternatives (top_logprobs).
        kwargs["logprobs"] = max(params.logprobs, 1)
    structured = guide(params)
    if structured is not None:
        kwargs["guided_decoding"] = structured
    return kwargs


def top_alternatives(candidates: dict, k: int) -> list[tuple[int, float]]:
    """The ``k`` most likely of one position's ``{token_id: Logprob}`` map.

    TensorRT-LLM adds the sampled token to its top ``k`` when it is not among them
    (``tensorrt_llm/executor/result.py``, ``compute_logprobs``), so a map can hold
    ``k + 1`` entries; OpenAI's ``top_logprobs`` is exactly ``k``. Ranks are 1-based; a
    missing rank sorts by log probability.
    """
    ranked = sorted(
        candidates.items(),
        key=lambda item: (item[1].rank if item[1].rank is not None else math.inf, -item[1].logprob),
    )
    return [(token_id, candidate.logprob) for token_id, candidate in ranked[:k]]


def cached_tokens(result: object) -> int:
    """Prompt tokens TensorRT-LLM reused from its KV cache for this request: the
    ``cached_tokens`` of its ``GenerationResult``, which trtllm-serve reports as
    ``prompt_tokens_details.cached_tokens`` (``tensorrt_llm/serve/postprocess_handlers.py``).
    Releases without it report 0, as does a result that has not counted yet (None)."""
    return getattr(result, "cached_tokens", None) or 0


def lora_request_args(adapter) -> tuple[str, int, str] | None:
    """``LoRARequest(lora_name, lora_int_id, lora_path)`` arguments for a registry entry."""
    if adapter is None:
        return None
    return adapter.name, adapter.int_id, str(adapter.path)


def llm_kwargs(engine: TRTLLMEngine) -> dict:
    """Keyword arguments for ``tensorrt_llm.LLM`` (the PyTorch backend's ``TorchLlmArgs``)."""
    if engine.enforce_eager and "cuda_graph_config" in engine.extra_llm_args:
        raise ValueError("enforce_eager turns CUDA graphs off; drop it or cuda_graph_config")
    kwargs: dict = {
        "model": str(engine.model_path),
        "dtype": engine.dtype,
        "tensor_parallel_size": engine.tensor_parallel_size,
        "pipeline_parallel_size": engine.pipeline_parallel_size,
        "guided_decoding_backend": "xgrammar",
    }
    if engine.enforce_eager:  # CUDA graphs are on by default; None turns them off
        kwargs["cuda_graph_config"] = None
    if engine.max_model_len is not None:
        kwargs["max_seq_len"] = engine.max_model_len
    lora = lora_config_kwargs(engine)
    if lora is not None:  # validated by TensorRT-LLM into its LoraConfig
        kwargs["lora_config"] = lora
    return {**kwargs, **engine.extra_llm_args}


def lora_config_kwargs(engine: TRTLLMEngine) -> dict | None:
    """Keyword arguments for TensorRT-LLM's ``LoraConfig``, or None without LoRA."""
    if not engine.enable_lora:
        return None
    return {
        "lora_dir": [str(path) for path in engine.lora_dirs],
        "lora_target_modules": lora_target_modules(engine.lora_dirs, engine.lora_runtime_loads),
        "max_lora_rank": engine.max_lora_rank,
        "max_loras": engine.max_loras,
        "max_cpu_loras": engine.max_cpu_loras or engine.max_loras,
    }


def context_length(requested: int | None, engine_max_seq_len: object, model_path: Path) -> int:
    """The context length to announce: ours, else the engine's, else the model's.

    ``LLM.args.max_seq_len`` stays None when it was not given; the PyTorch backend then
    uses the model's ``max_position_embeddings``. The frontend needs an int to budget
    tokens, so a model that declares none must be given ``--max-model-len``.
    """
    if requested is not None:
        return requested
    if isinstance(engine_max_seq_len, int):
        return engine_max_seq_len
    config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    declared = config.get("max_position_embeddings")
    if isinstance(declared, int):
        return declared
    raise EngineUnavailable(
        f"{model_path}/config.json declares no max_position_embeddings, and TensorRT-LLM "
        "reports no max_seq_len: give --max-model-len"
    )


def engine_failure(exc: Exception, request_error: type[BaseException]) -> Exception:
    """What an exception out of a TensorRT-LLM result means for us.

    TensorRT-LLM raises its public ``RequestError`` for one failed request; any other
    exception comes from ``GenerationExecutor._handle_background_error``, which has shut
    the LLM down first (``tensorrt_llm/executor/executor.py``).
    """
    if isinstance(exc, request_error):
        return InvalidRequest(str(exc))
    return EngineDead(f"TensorRT-LLM failed: {exc}")


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
    dtype: str = "auto"
    #: vLLM's meaning: no CUDA graphs (TensorRT-LLM's ``cuda_graph_config=None``).
    enforce_eager: bool = False
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    enable_lora: bool = False
    max_loras: int = 4
    max_lora_rank: int = 16
    max_cpu_loras: int | None = None
    #: Every adapter folder declared at start (flags, modules file, config file).
    lora_dirs: list[Path] = field(default_factory=list)
    #: Adapters may be loaded at run time (--enable-lora-management).
    lora_runtime_loads: bool = False
    #: Anything else for ``tensorrt_llm.LLM(...)`` (a --config file's ``llm_args``).
    extra_llm_args: dict = field(default_factory=dict)
    supported_sampling: frozenset[str] = SUPPORTED_SAMPLING
    in_process = True

    def __post_init__(self) -> None:
        self._llm = None
        self._request_error: type[BaseException] = RuntimeError
        self._tokenizer: HFTokenizer | None = None
        self._info: ModelInfo | None = None
        #: Requests TensorRT-LLM has not yet reported finished (aborted ones included).
        self._unfinished: set[str] = set()
        self._streaming: dict[str, object] = {}
        self._settling: set[asyncio.Task] = set()
        self._failed = False

    @property
    def supports_lora(self) -> bool:
        return self.enable_lora

    async def start(self) -> None:
        # Importing and building block for the whole model load; keep the loop answering.
        llm, self._tokenizer, self._request_error = await asyncio.to_thread(self._build)
        self._info = ModelInfo(
            id=self.served_model_name,
            max_model_len=context_length(self.max_model_len, llm.args.max_seq_len, self.model_path),
            path=self.model_path,
            created=int(time.time()),
        )
        self._llm = llm  # last: is_ready() turns true only when everything is in place

    def _build(self) -> tuple[object, HFTokenizer, type[Exception]]:
        """TensorRT-LLM's LLM, the tokenizer and RequestError, loaded under the lock every
        engine takes to import and load from transformers."""
        with MODEL_LOADING:
            try:
                from tensorrt_llm import LLM
                from tensorrt_llm.executor import RequestError
            except ImportError as exc:
                raise EngineUnavailable(
                    "the 'trtllm' engine needs TensorRT-LLM, which is not installed here "
                    f"({exc}). Install it on a machine with an NVIDIA GPU: see the README, "
                    "'TensorRT-LLM'."
                ) from None
            return LLM(**llm_kwargs(self)), HFTokenizer(self.model_path), RequestError

    def is_ready(self) -> bool:
        return self._llm is not None and not self._failed

    def model(self) -> ModelInfo:
        if self._info is None:
            raise RuntimeError("engine not started")
        return self._info

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Delta]:
        promise = self._submit(request)
        self._unfinished.add(request.request_id)
        self._streaming[request.request_id] = promise
        top_k = request.sampling.logprobs
        completion_tokens = 0
        try:
            async for result in self._results(promise):
                output = result.outputs[0]
                new_ids = list(output.token_ids_diff)
                completion_tokens += len(new_ids)
                yield Delta(
                    text=output.text_diff,
                    token_ids=new_ids,
                    completion_tokens=completion_tokens,
                    finish_reason=finish_reason(output.finish_reason) if result.finished else None,
                    logprobs=None if top_k is None else self._logprobs(output, new_ids, top_k),
                    cached_prompt_tokens=cached_tokens(result),
                )
        finally:
            self._release(request.request_id, promise)

    def _submit(self, request: GenerateRequest):
        from tensorrt_llm import SamplingParams as TRTSamplingParams
        from tensorrt_llm.executor.request import LoRARequest
        from tensorrt_llm.sampling_params import GuidedDecodingParams

        kwargs = to_trtllm_kwargs(request.sampling)
        if "guided_decoding" in kwargs:
            kwargs["guided_decoding"] = GuidedDecodingParams(**kwargs["guided_decoding"])
        lora = lora_request_args(request.adapter)
        try:
            return self._llm.generate_async(
                request.prompt_token_ids,
                sampling_params=TRTSamplingParams(**kwargs),
                lora_request=None if lora is None else LoRARequest(*lora),
                streaming=True,
            )
        except (ValueError, TypeError) as exc:  # parameters it refused before queueing
            raise InvalidRequest(str(exc)) from None
        except RuntimeError as exc:  # "LLM is shutting down", or a RequestError
            raise self._failure(exc) from exc

    async def _results(self, promise) -> AsyncIterator:
        """The promise's results; its exceptions as ours (nothing else is caught)."""
        results = aiter(promise)
        while True:
            try:
                result = await anext(results)
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise self._failure(exc) from exc
            yield result

    def _failure(self, exc: Exception) -> Exception:
        """``exc`` as ours; a dead engine stays dead (``is_ready()`` turns false)."""
        failure = engine_failure(exc, self._request_error)
        self._failed = self._failed or isinstance(failure, EngineDead)
        return failure

    def _release(self, request_id: str, promise) -> None:
        """Forget a request once TensorRT-LLM is done with it; abort it if it is not.

        ``abort()`` only asks the executor to cancel; the request stays unfinished until
        its final "cancelled" result comes back, which someone must read.
        """
        self._streaming.pop(request_id, None)
        if promise.finished:
            self._unfinished.discard(request_id)
            return
        promise.abort()
        task = asyncio.get_running_loop().create_task(self._settle(request_id, promise))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, request_id: str, promise) -> None:
        try:
            async with asyncio.timeout(SETTLE_SECONDS):
                async for _ in promise:
                    pass
        except TimeoutError:
            pass  # no longer ours to wait for
        except Exception as exc:
            self._failure(exc)  # a dead engine shows in is_ready(); a RequestError does not
        finally:
            self._unfinished.discard(request_id)

    def _logprobs(self, output, new_ids: list[int], k: int) -> list[TokenLogprob]:
        """TensorRT-LLM's per-token ``{token_id: Logprob}`` maps as neutral records."""
        text_of = self._tokenizer.token_text
        return [
            TokenLogprob(
                token_id,
                text_of(token_id),
                candidates[token_id].logprob,
                tuple((tid, text_of(tid), lp) for tid, lp in top_alternatives(candidates, k)),
            )
            for token_id, candidates in zip(new_ids, output.logprobs_diff, strict=False)
        ]

    async def abort(self, request_id: str) -> None:
        promise = self._streaming.get(request_id)
        if promise is not None and not promise.finished:
            promise.abort()

    def num_unfinished_requests(self) -> int:
        """Requests submitted here that TensorRT-LLM has not reported finished or cancelled.

        The LLM API has no public count of what its executor holds: ``LLM.get_stats()``
        yields per-iteration statistics (only with ``enable_iter_perf_stats``), drained
        as read and produced only while requests run, so it cannot say 0 after an abort.
        This counts each request until its own final result has come back.
        """
        return len(self._unfinished)

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
        for task in list(self._settling):
            task.cancel()
        if self._llm is not None:
            await asyncio.to_thread(self._llm.shutdown)
            self._llm = None
