"""Server settings, parsed once from the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from openai_frontend.responses.store import DEFAULT_MAX_BYTES, DEFAULT_TTL_S
from templates.sources import DEFAULT_MAX_REQUEST_TEMPLATE_BYTES


@dataclass(frozen=True)
class ServerConfig:
    model_path: Path
    served_model_name: str
    host: str = "127.0.0.1"
    port: int = 8000
    engine: str = "vllm"
    #: "generate" (chat, completions) or "embed" (/v1/embeddings): engines.base.Task.
    task: str = "generate"
    # Engine-specific: parallelism (vllm, trtllm) and upstreams (remote).
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    distributed_executor_backend: str | None = None
    #: trtllm only: more keyword arguments for ``tensorrt_llm.LLM`` (a config file's).
    llm_args: dict = field(default_factory=dict)
    #: The engine's own arguments (``--engine-args``; for vLLM, AsyncEngineArgs fields).
    engine_args: dict = field(default_factory=dict)
    upstreams: tuple[str, ...] = ()
    upstream_model: str | None = None
    upstream_api_key: str | None = None
    #: remote only: "affinity" or "least-outstanding" (see engines.routing).
    routing: str = "affinity"
    max_model_len: int | None = None
    #: None: not given, so the model's default (see default_model.default_dtype).
    dtype: str | None = None
    enforce_eager: bool = True
    chat_template: str | None = None
    trust_request_chat_template: bool = False
    max_chat_template_bytes: int = DEFAULT_MAX_REQUEST_TEMPLATE_BYTES
    generation_overrides: dict = field(default_factory=dict)
    #: Output parsers by name (vLLM's flags); None: inferred from the chat template.
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    log_level: str = "info"
    # LoRA (vLLM's meanings for the limits).
    loras: tuple[tuple[str, str], ...] = ()
    lora_modules_file: str | None = None
    max_loras: int = 4
    max_lora_rank: int = 16
    max_cpu_loras: int | None = None
    lora_separator: str = ":"
    enable_lora_management: bool = False
    lora_roots: tuple[str, ...] = ()
    #: Load ``ROOT/NAME`` when a request names an adapter NAME not loaded yet.
    lora_on_demand: bool = False
    base_via_zero_lora: str = "auto"
    admin_api_key: str | None = None
    # Access and limits.
    api_keys: tuple[str, ...] = ()
    protect_metrics: bool = False
    #: Serve /docs, /redoc and /openapi.json (behind the user keys, when there are any).
    docs: bool = True
    #: Serve the built-in chat page at ``/`` (``--no-ui``: then ``/`` is a 404).
    ui: bool = True
    max_request_bytes: int = 8 * 1024 * 1024
    allowed_origins: tuple[str, ...] = ()
    #: Prompts in one completions request, and engine sequences (n x prompts) in one.
    max_prompts_per_request: int = 128
    max_sequences_per_request: int = 256
    #: Engine sequences generating at once (a request takes one slot per sequence).
    max_concurrent_requests: int | None = None
    max_queued_requests: int | None = None
    #: "priority": the admission queue and the engine serve by request priority, then
    #: arrival; "fcfs": by arrival only, and a request priority is a 400.
    scheduling_policy: str = "fcfs"
    request_timeout: float | None = None
    #: Seconds a request may wait for its slots (``--queue-timeout``): then a 503.
    queue_timeout: float | None = None
    drain_timeout: float = 30.0
    #: Streamed frames of one response written at most once per this many ms (0: each
    #: at once); :mod:`openai_frontend.coalesce`.
    stream_coalesce_ms: float = 0.0
    #: OTLP/HTTP traces URL (``--otlp-traces-endpoint``): one span per request, and the
    #: in-process engine's own spans, continuing a caller's ``traceparent``.
    otlp_traces_endpoint: str | None = None
    log_prompts: bool = False
    #: Where /v1/responses keeps stored responses: a SQLite file, "none", or None (a file
    #: in the cache dir).
    response_store: str | None = None
    #: Stored responses older than this many seconds are gone (404, then deleted), and
    #: past this many bytes the oldest go first.
    responses_ttl: float = DEFAULT_TTL_S
    responses_max_bytes: int = DEFAULT_MAX_BYTES
    #: Batch lines sent at once, over all batches (``--batch-concurrency``).
    batch_concurrency: int = 4
    #: API processes serving one port (``--api-server-count``), and which one this is:
    #: with more than one, state is shared or divided as :mod:`openai_frontend.api_servers`
    #: documents (limits divided, metrics in prometheus_client's multiprocess files).
    api_server_count: int = 1
    api_server_index: int = 0

    @property
    def multiprocess(self) -> bool:
        """One of several API processes: the rules of shared state apply."""
        return self.api_server_count > 1
