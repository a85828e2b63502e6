"""The one small Protocol every engine backend implements.

The frontend depends on this module only; it never imports a backend module directly
(see :func:`engines.load_engine`), and backends never import FastAPI. Everything that
crosses the boundary is a plain dataclass, so a backend is easy to write and to test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

#: How a sequence ended. "repetition" is vLLM's: it stopped a looping sequence. A
#: sequence the engine failed to finish is no finish reason: the backend raises
#: EngineError instead, so the client gets an error, never a truncated success.
FinishReason = Literal["stop", "length", "abort", "repetition"]

#: What a served model does: generate text (chat, completions) or embed (vectors).
Task = Literal["generate", "embed"]


class InvalidRequest(ValueError):
    """The engine refused a request (the client gets a 4xx: a 400 for its parameters,
    or the status and code an upstream refused it with, such as 401, 404 or 413)."""

    def __init__(
        self, message: str, param: str | None = None, status: int = 400, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code


class EngineDead(RuntimeError):
    """The engine failed and cannot serve this or any later request."""


class EngineError(RuntimeError):
    """One request failed, but the engine still serves others (a generation that
    failed, an engine queue that is full, an upstream that went away mid-stream, or
    no upstream available). ``status`` is the HTTP status the client gets: 500 for a
    failed generation, 502 for a failed upstream, 503 when the engine or every
    upstream is busy or unavailable, 429 when all upstreams are overloaded."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class StructuredOutput:
    """Guided decoding: exactly one of the fields is set."""

    json_schema: dict | None = None
    json_object: bool = False


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Engine-neutral sampling parameters, already validated and merged with defaults.

    ``None`` means "the engine's own default"; the frontend fills in the model's
    generation_config and server overrides before an engine ever sees this object.
    """

    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    min_tokens: int | None = None
    ignore_eos: bool = False
    logit_bias: dict[int, float] | None = None
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    structured_output: StructuredOutput | None = None
    #: xgrammar's structural tag (``{"type": "structural_tag", "format": {...}}``): free
    #: text in which a trigger string starts a section held to a grammar. Strict tools in
    #: ``auto`` mode use it; never set with ``structured_output``. Declared like a
    #: sampling field, so an engine without it (remote) is known and the frontend checks
    #: the calls after the fact instead.
    structural_tag: dict | None = None
    #: Where ``structured_output`` starts in a reply that reasons first. None: at its
    #: first token. "inside": once ``</think>`` closes the reasoning the reply starts in
    #: (``deepseek_r1``, or a prompt that opened ``<think>``). "may_open": the same, but a
    #: reply that does not open ``<think>`` itself has no reasoning (``qwen3``).
    constraint_after_reasoning: Literal["inside", "may_open"] | None = None
    #: Scheduling priority, lower is sooner (vLLM's ``priority``); 0 is the neutral one.
    #: Not sampling strictly, but declared like a sampling field, so an engine that
    #: cannot schedule by priority refuses it by name instead of ignoring it.
    priority: int = 0

    def fields_set(self) -> set[str]:
        """Names of the fields that differ from their neutral default.

        Used to reject, by name, a field the engine declared it cannot honour.
        """
        defaults = _NEUTRAL_DEFAULTS
        return {
            name
            for name in self.__dataclass_fields__
            if name != "max_tokens" and getattr(self, name) != defaults[name]
        }


#: Every sampling field an engine may declare (``max_tokens`` is always honoured, and
#: ``prompt_logprobs`` backs completions' ``echo`` with ``logprobs``).
ALL_SAMPLING = frozenset(
    name for name in SamplingParams.__dataclass_fields__ if name not in ("max_tokens",)
)

_NEUTRAL_DEFAULTS = {
    name: f.default
    for name, f in SamplingParams.__dataclass_fields__.items()
    if name != "max_tokens"
}


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One sampled token with its log probability and the top alternatives."""

    token_id: int
    token: str
    logprob: float
    top: tuple[tuple[int, str, float], ...] = ()
    #: The token's rank in the engine's distribution (1 = most likely), where the engine
    #: reports it (vLLM's ``prompt_logprobs`` shape carries it); None when unknown.
    rank: int | None = None


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """One sequence to generate. ``n > 1`` is fanned out by the frontend."""

    request_id: str
    prompt_token_ids: list[int]
    sampling: SamplingParams
    #: A ``lora.registry.Adapter``, or None for the base model.
    adapter: object | None = None
    #: OpenAI's ``prompt_cache_key``: requests sharing one share a prompt prefix, so an
    #: engine that routes (remote) may send them where that prefix is cached.
    prompt_cache_key: str | None = None
    #: W3C trace context (``traceparent``, ``tracestate``) of the gateway's span for this
    #: request, with --otlp-traces-endpoint: the engine's own spans continue its trace.
    trace_headers: dict[str, str] | None = None


@dataclass(slots=True)
class Delta:
    """What one engine step added to one sequence.

    ``completion_tokens`` counts all tokens generated so far, so the last delta carries
    the final usage. ``finish_reason`` is set on the last delta only, and with it
    ``stop_sequence``: the stop string that ended the sequence, when one did (Anthropic's
    ``stop_reason: "stop_sequence"`` names it; an engine that cannot tell leaves None).
    ``cached_prompt_tokens`` is how many prompt tokens the engine served from its prefix
    cache instead of computing them (OpenAI's ``cached_tokens``); the last delta's count
    is the one reported, since some engines learn it only at the end.
    """

    text: str
    token_ids: list[int]
    completion_tokens: int
    finish_reason: FinishReason | None = None
    logprobs: list[TokenLogprob] | None = None
    cached_prompt_tokens: int = 0
    stop_sequence: str | None = None
    #: The prompt's tokens with their logprobs (``sampling.prompt_logprobs`` alternatives
    #: each), on the first delta only, when asked; the first token has none (None).
    prompt_logprobs: list[TokenLogprob | None] | None = None


def matched_stop_string(stop_reason: object) -> str | None:
    """vLLM's ``stop_reason`` (in-process, or in a vLLM upstream's stream): the stop
    string that matched (a str), a stop token id (an int) or None (EOS, length). Only a
    string is a stop sequence."""
    return stop_reason if isinstance(stop_reason, str) else None


#: Who owns a model in its ``/v1/models`` card unless the engine says otherwise.
DEFAULT_OWNER = "openai-frontend"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the frontend needs to know about a served model."""

    id: str
    max_model_len: int
    path: Path | None = None
    created: int = 0
    owned_by: str = DEFAULT_OWNER
    generation_defaults: dict = field(default_factory=dict)
    #: The dtype the engine computes in ("float32", "bfloat16"), where it knows it.
    dtype: str | None = None


@runtime_checkable
class Engine(Protocol):
    """An engine serves one model; the frontend drives it through these members."""

    #: Names of the :class:`SamplingParams` fields this engine honours.
    supported_sampling: frozenset[str]
    #: Whether requests may carry a LoRA adapter.
    supports_lora: bool
    #: True for an engine in this process: if it stops being ready it has died, and the
    #: server exits for its supervisor to restart it. False for remote upstreams, which
    #: come and go while the gateway keeps serving.
    in_process: bool

    async def start(self) -> None:
        """Load the model. Slow; the server answers ``/health`` meanwhile."""

    def is_ready(self) -> bool:
        """True once the model is loaded and the engine has not failed."""

    def model(self) -> ModelInfo:
        """The model this engine serves."""

    def generate(self, request: GenerateRequest) -> AsyncIterator[Delta]:
        """Stream deltas; closing the iterator early aborts the request."""

    async def abort(self, request_id: str) -> None:
        """Stop a request and free its slot in the engine."""

    def num_unfinished_requests(self) -> int:
        """Requests the engine still holds, running or waiting."""

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        """Token ids of ``text`` with the model's own tokenizer."""

    def detokenize(self, token_ids: list[int]) -> str:
        """Text of ``token_ids``."""

    async def add_adapter(self, adapter: object) -> None:
        """Make a LoRA adapter ready to serve (only when ``supports_lora``)."""

    async def remove_adapter(self, adapter: object) -> None:
        """Free an adapter's engine slot; no request uses it any more."""

    async def loaded_adapter_ids(self) -> list[int]:
        """Ids of the adapters loaded in the engine right now."""

    async def shutdown(self) -> None:
        """Release the engine's processes and memory."""


@runtime_checkable
class Embedder(Protocol):
    """An engine that can also turn token ids into embedding vectors (``--task embed``).

    Optional: an engine without ``embed`` (TensorRT-LLM) cannot serve an embedding model,
    and the server refuses to start one rather than answering every request with an error.
    """

    async def embed(
        self, request_id: str, inputs: list[list[int]], dimensions: int | None
    ) -> list[list[float]]:
        """One vector per input, in order, all sent to the engine as one batch.

        ``dimensions`` asks for Matryoshka truncation (renormalized); an engine whose model
        cannot do it raises :class:`InvalidRequest` naming ``dimensions``.
        """


@runtime_checkable
class MetricsSource(Protocol):
    """An engine with Prometheus metrics of its own, by vLLM's names (``vllm:``), which
    the gateway's ``/metrics`` exports beside its own: in-process vLLM's stat logger's,
    or the remote engine's aggregate of its upstreams'. Optional, like Embedder."""

    def engine_metrics(self) -> Iterable:
        """prometheus_client metric families (``Metric``), read at each scrape."""
