"""``openai-frontend``: ``serve`` a model, or ``prepare-model`` (fetch and convert the default).

``serve``'s flags follow ``vllm serve`` where the two overlap.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path

from openai_frontend.bench.cli import add_parser as add_bench_parser
from openai_frontend.cli_types import (
    json_object,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from openai_frontend.config import ServerConfig
from openai_frontend.default_embed_model import EMBED_MODEL_NAME, ensure_default_embed_model
from openai_frontend.default_model import (
    MODEL_NAME,
    cache_root,
    default_dtype,
    default_model_dir,
    ensure_default_model,
    is_prepared,
)
from openai_frontend.responses.store import DEFAULT_MAX_BYTES, DEFAULT_TTL_S
from templates.sources import DEFAULT_MAX_REQUEST_TEMPLATE_BYTES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openai-frontend", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve a model over the OpenAI API")
    serve.add_argument(
        "model",
        nargs="?",
        help=f"a Hugging Face model folder (default: {MODEL_NAME}, prepared on first use)",
    )
    serve.add_argument(
        "--task",
        choices=("generate", "embed"),
        help="generate (chat, completions; the default) or embed (/v1/embeddings, /v1/rerank, "
        f"/v1/score; without MODEL: {EMBED_MODEL_NAME})",
    )
    serve.add_argument(
        "--runner",
        choices=("generate", "pooling"),
        help="vLLM's name for --task: pooling is embed",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--served-model-name", help="the name clients use (default: MODEL as given)")
    serve.add_argument(
        "--max-model-len", type=positive_int, help="context length (default: the model's)"
    )
    serve.add_argument(
        "--dtype",
        help="auto, bfloat16, float16 or float32 (default: float32 for the default model on "
        "CPU, else auto)",
    )
    serve.add_argument(
        "--enforce-eager",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip torch.compile (start in ~25 s instead of ~2 min on CPU)",
    )
    serve.add_argument("--chat-template", help="a template file, or a bundled name (chatml, basic)")
    serve.add_argument(
        "--tool-call-parser",
        help="the model's tool call format: hermes, qwen3_coder, glm45, deepseek_v3, "
        "deepseek_v31, kimi_k2, openai (gpt-oss harmony), mistral, llama3_json or pythonic "
        "(default: inferred from the chat template)",
    )
    serve.add_argument(
        "--reasoning-parser",
        help="the model's reasoning format: deepseek_r1 or qwen3 "
        "(default: inferred from the chat template)",
    )
    serve.add_argument(
        "--trust-request-chat-template",
        action="store_true",
        help="let requests carry their own chat_template (it runs sandboxed)",
    )
    serve.add_argument(
        "--max-chat-template-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_TEMPLATE_BYTES,
        help="largest chat_template a request may carry (the server's own is not capped)",
    )
    serve.add_argument(
        "--override-generation-config",
        type=json_object,
        default={},
        help="JSON sampling defaults that win over the model's generation_config.json",
    )
    serve.add_argument(
        "--cache-dir", type=Path, help=f"where the default model is kept (default: {cache_root()})"
    )
    serve.add_argument(
        "--config",
        type=Path,
        help="YAML declaring several models (see README); then no MODEL or per-model flags",
    )
    serve.add_argument("--log-level", default="info")
    _add_engine_flags(serve)
    _add_access_flags(serve)
    _add_lora_flags(serve)

    add_bench_parser(commands)
    prepare = commands.add_parser("prepare-model", help=f"fetch and convert {MODEL_NAME} once")
    prepare.add_argument("--cache-dir", type=Path)
    return parser


def _add_engine_flags(serve: argparse.ArgumentParser) -> None:
    from engines import BACKENDS
    from engines.routing import POLICIES

    engine = serve.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        choices=sorted(BACKENDS),
        default="vllm",
        help="vllm (in process), trtllm (in process, needs TensorRT-LLM and a GPU), "
        "remote (upstream OpenAI-compatible servers; MODEL gives tokenizer and template), or "
        "synthetic (NOT a model: fixed one-token deltas, to measure the frontend alone)",
    )
    engine.add_argument(
        "--engine-args",
        type=json_object,
        default={},
        metavar="JSON",
        help="the engine's own arguments, e.g. vLLM's AsyncEngineArgs fields: "
        '\'{"max_num_seqs": 64, "kv_cache_dtype": "fp8"}\'; checked before the model loads',
    )
    engine.add_argument("--tensor-parallel-size", "-tp", type=positive_int, default=1)
    engine.add_argument("--pipeline-parallel-size", "-pp", type=positive_int, default=1)
    engine.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="URL",
        help="an upstream server's base URL for --engine remote (repeatable)",
    )
    engine.add_argument(
        "--upstream-model", help="the model's name at the upstreams (default: the served name)"
    )
    engine.add_argument(
        "--routing",
        choices=POLICIES,
        default="affinity",
        help="--engine remote: affinity (a conversation stays on the upstream that caches its "
        "prefix, within a load bound) or least-outstanding",
    )
    engine.add_argument(
        "--upstream-api-key",
        default=os.environ.get("OPENAI_FRONTEND_UPSTREAM_API_KEY"),
        help="bearer token for the upstreams (env OPENAI_FRONTEND_UPSTREAM_API_KEY)",
    )


def _add_access_flags(serve: argparse.ArgumentParser) -> None:
    access = serve.add_argument_group("access and limits")
    env_key = os.environ.get("OPENAI_FRONTEND_API_KEY")
    access.add_argument(
        "--api-key",
        action="append",
        default=[env_key] if env_key else [],
        help="a user key for /v1/*, /tokenize, /detokenize and the API docs "
        "(repeatable; env OPENAI_FRONTEND_API_KEY)",
    )
    access.add_argument(
        "--protect-metrics", action="store_true", help="/metrics needs a user key too"
    )
    access.add_argument(
        "--otlp-traces-endpoint",
        metavar="URL",
        help="export one OpenTelemetry span per request (OTLP/HTTP, e.g. "
        "http://collector:4318/v1/traces), and vLLM's own, continuing a caller's traceparent",
    )
    access.add_argument(
        "--no-docs",
        dest="docs",
        action="store_false",
        help="no /docs, /redoc or /openapi.json (404); with --api-key they need a user key",
    )
    access.add_argument(
        "--no-ui", dest="ui", action="store_false", help="no chat page at / (then / is a 404)"
    )
    access.add_argument("--max-request-bytes", type=positive_int, default=8 * 1024 * 1024)
    access.add_argument(
        "--allowed-origins",
        action="append",
        default=[],
        help="CORS origins allowed (default: none)",
    )
    access.add_argument(
        "--max-prompts-per-request",
        type=positive_int,
        default=128,
        help="prompts in one completions request (default 128)",
    )
    access.add_argument(
        "--max-sequences-per-request",
        type=positive_int,
        default=256,
        help="engine sequences (n x prompts) one request may start (default 256)",
    )
    access.add_argument(
        "--max-concurrent-requests",
        type=positive_int,
        help="sequences generating at once; a request takes one slot per sequence",
    )
    access.add_argument(
        "--max-queued-requests",
        type=non_negative_int,
        help="requests waiting for their slots; then 429 (0: none wait)",
    )
    access.add_argument(
        "--queue-timeout",
        type=positive_float,
        help="seconds a request may wait for its slots; then 503 with Retry-After",
    )
    access.add_argument(
        "--scheduling-policy",
        choices=("fcfs", "priority"),
        default="fcfs",
        help="priority: the queue and the engine serve requests by their priority (lower "
        "first; service_tier flex/priority map to one), then arrival; fcfs: by arrival only",
    )
    access.add_argument(
        "--request-timeout",
        type=positive_float,
        help="seconds before a request is stopped, its wait for a slot included",
    )
    access.add_argument(
        "--log-prompts", action="store_true", help="put prompt text in the request log (off: never)"
    )
    access.add_argument(
        "--api-server-count",
        type=positive_int,
        default=1,
        metavar="N",
        help="API processes on one port over one engine (vllm: one engine core, vLLM's own "
        "multi-API-server clients); limits are divided among them (see README)",
    )
    access.add_argument(
        "--drain-timeout",
        type=non_negative_float,
        default=30.0,
        help="on SIGTERM, seconds in-flight streams may finish before they are stopped",
    )
    access.add_argument(
        "--stream-coalesce-ms",
        type=non_negative_float,
        default=0.0,
        metavar="MS",
        help="write a stream's frames at most once per MS milliseconds, joined (0: each at "
        "once); fewer socket writes, less gateway CPU per token, up to MS of added latency",
    )
    access.add_argument(
        "--response-store",
        metavar="PATH|none",
        help="SQLite file for stored /v1/responses (default: responses.sqlite3 in the cache "
        "dir; 'none': store nothing)",
    )
    access.add_argument(
        "--responses-ttl",
        type=positive_float,
        default=DEFAULT_TTL_S,
        metavar="SECONDS",
        help="stored responses older than this are deleted (default: 30 days, as OpenAI)",
    )
    access.add_argument(
        "--responses-max-bytes",
        type=positive_int,
        default=DEFAULT_MAX_BYTES,
        metavar="BYTES",
        help="past this many bytes of stored responses the oldest are deleted (default 1 GiB)",
    )
    access.add_argument(
        "--batch-concurrency",
        type=positive_int,
        default=4,
        metavar="N",
        help="batch lines (/v1/batches) sent at once, behind interactive requests (default 4)",
    )


def _add_lora_flags(serve: argparse.ArgumentParser) -> None:
    lora = serve.add_argument_group("LoRA adapters")
    lora.add_argument(
        "--lora",
        action="append",
        default=[],
        metavar="NAME=PATH",
        type=_name_path,
        help="serve a PEFT adapter folder under NAME (repeatable)",
    )
    lora.add_argument(
        "--lora-modules-file",
        help="JSON or YAML list of {name, path, base_model_name, description}",
    )
    lora.add_argument("--max-loras", type=int, default=4, help="adapters in one batch")
    lora.add_argument("--max-lora-rank", type=int, default=16)
    lora.add_argument("--max-cpu-loras", type=int, help="adapters kept in CPU memory")
    lora.add_argument(
        "--lora-separator", default=":", help="MODEL{sep}ADAPTER also names an adapter"
    )
    lora.add_argument(
        "--enable-lora-management",
        action="store_true",
        help="mount /v1/load_lora_adapter and /v1/unload_lora_adapter "
        "(needs --admin-api-key and --lora-root)",
    )
    lora.add_argument(
        "--lora-root",
        action="append",
        default=[],
        help="run-time loads must stay inside (repeatable)",
    )
    lora.add_argument(
        "--lora-on-demand",
        action="store_true",
        help="a request for adapter NAME not loaded loads --lora-root/NAME on first use "
        "(least recently used idle ones evicted beyond --max-loras)",
    )
    lora.add_argument("--admin-api-key", default=os.environ.get("OPENAI_FRONTEND_ADMIN_API_KEY"))
    lora.add_argument(
        "--base-via-zero-lora",
        choices=("auto", "pinned", "on", "off"),
        default="auto",
        help="vllm: keep base requests clear of adapters with a zero-weight adapter, pinned "
        "in the slot base tokens read (pinned) or running every base request (on); "
        "auto: pinned where a start-up self-check finds the CPU build's mixed-batch bug",
    )


def _name_path(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {value!r}")
    return name, path


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        from openai_frontend.bench.cli import run as run_bench

        return run_bench(args)
    if args.command == "prepare-model":
        print(ensure_default_model(args.cache_dir))
        return 0
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    setup_logging(args)
    config = _server_config(args)
    if isinstance(config, int):
        return config
    if config.multiprocess:
        from openai_frontend.api_servers import supervise

        return supervise(args, config)
    return run_server(args, config)


def _server_config(args: argparse.Namespace) -> ServerConfig | int:
    """The server's settings from the flags, or the exit status of a refusal."""
    from openai_frontend.sampling import check_overrides

    if args.config is not None and args.model:
        print("error: give MODEL or --config, not both", file=sys.stderr)
        return 2
    task = _task(args)
    if task is None:
        print("error: --task and --runner disagree", file=sys.stderr)
        return 2
    if args.model:
        model_path = Path(args.model)
    elif task == "embed" and args.config is None:
        model_path = ensure_default_embed_model(args.cache_dir)
    else:
        model_path = _default_model(args.cache_dir)
    if not (model_path / "config.json").is_file():
        print(
            f"error: {model_path} is not a Hugging Face model folder (no config.json)",
            file=sys.stderr,
        )
        return 2
    config = ServerConfig(
        model_path=model_path.resolve(),
        served_model_name=args.served_model_name or args.model or _default_name(task),
        task=task,
        host=args.host,
        port=args.port,
        engine=args.engine,
        tensor_parallel_size=args.tensor_parallel_size,
        pipeline_parallel_size=args.pipeline_parallel_size,
        engine_args=args.engine_args,
        upstreams=tuple(args.upstream),
        upstream_model=args.upstream_model,
        upstream_api_key=args.upstream_api_key,
        routing=args.routing,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        enforce_eager=args.enforce_eager,
        chat_template=args.chat_template,
        tool_call_parser=args.tool_call_parser,
        reasoning_parser=args.reasoning_parser,
        trust_request_chat_template=args.trust_request_chat_template,
        max_chat_template_bytes=args.max_chat_template_bytes,
        generation_overrides=check_overrides(args.override_generation_config),
        log_level=args.log_level,
        loras=tuple(args.lora),
        lora_modules_file=args.lora_modules_file,
        max_loras=args.max_loras,
        max_lora_rank=args.max_lora_rank,
        max_cpu_loras=args.max_cpu_loras,
        lora_separator=args.lora_separator,
        enable_lora_management=args.enable_lora_management,
        lora_roots=tuple(args.lora_root),
        lora_on_demand=args.lora_on_demand,
        base_via_zero_lora=args.base_via_zero_lora,
        admin_api_key=args.admin_api_key,
        api_keys=tuple(args.api_key),
        protect_metrics=args.protect_metrics,
        docs=args.docs,
        ui=args.ui,
        max_request_bytes=args.max_request_bytes,
        allowed_origins=tuple(args.allowed_origins),
        max_prompts_per_request=args.max_prompts_per_request,
        max_sequences_per_request=args.max_sequences_per_request,
        max_concurrent_requests=args.max_concurrent_requests,
        max_queued_requests=args.max_queued_requests,
        scheduling_policy=args.scheduling_policy,
        request_timeout=args.request_timeout,
        queue_timeout=args.queue_timeout,
        drain_timeout=args.drain_timeout,
        stream_coalesce_ms=args.stream_coalesce_ms,
        otlp_traces_endpoint=args.otlp_traces_endpoint,
        log_prompts=args.log_prompts,
        response_store=args.response_store,
        responses_ttl=args.responses_ttl,
        responses_max_bytes=args.responses_max_bytes,
        batch_concurrency=args.batch_concurrency,
        api_server_count=args.api_server_count,
    )
    for flag, value in (
        ("--max-queued-requests", config.max_queued_requests),
        ("--queue-timeout", config.queue_timeout),
    ):
        if value is not None and config.max_concurrent_requests is None:
            print(f"error: {flag} needs --max-concurrent-requests", file=sys.stderr)
            return 2
    if config.lora_on_demand and not config.lora_roots:
        print("error: --lora-on-demand needs --lora-root", file=sys.stderr)
        return 2
    if config.enable_lora_management and not (config.admin_api_key and config.lora_roots):
        print(
            "error: --enable-lora-management needs --admin-api-key and --lora-root", file=sys.stderr
        )
        return 2
    return config


def run_server(
    args: argparse.Namespace,
    config: ServerConfig,
    engine_extras: list[dict] | None = None,
    sockets: list | None = None,
) -> int:
    """Serve until stopped: one API process (all of the server, or one of several, whose
    engines get ``engine_extras`` per model and which serves on ``sockets``)."""
    import uvicorn

    from engines import load_engine
    from lora.peft_folder import AdapterError
    from openai_frontend.adapters import lora_enabled
    from openai_frontend.app import create_gateway, serve_model

    try:
        models = model_configs(args, config)
        extras = engine_extras or [{} for _ in models]
        served = [
            serve_model(
                model,
                load_engine(model.engine, **engine_kwargs(model, lora_enabled(model)), **extra),
            )
            for model, extra in zip(models, extras, strict=True)
        ]
        app = create_gateway(config, served)
    except (AdapterError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = _server_class()(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=config.log_level,
            # Our access log (openai_frontend.access) has one richer line per request.
            access_log=False,
            timeout_graceful_shutdown=config.drain_timeout + 10,
        )
    )
    app.state.server.request_stop = lambda: setattr(server, "should_exit", True)
    server.run(sockets=sockets)
    if app.state.server.engine_failed:
        print("error: the engine failed (see the log above)", file=sys.stderr)
        return 1
    return 0


def _task(args: argparse.Namespace) -> str | None:
    """``--task``, or vLLM's ``--runner`` saying the same; None when they disagree."""
    from_runner = {"generate": "generate", "pooling": "embed", None: None}[args.runner]
    if args.task and from_runner and args.task != from_runner:
        return None
    return args.task or from_runner or "generate"


def _default_name(task: str) -> str:
    return EMBED_MODEL_NAME if task == "embed" else MODEL_NAME


def model_configs(args: argparse.Namespace, config: ServerConfig) -> list[ServerConfig]:
    """The one model of the flags, or every model of ``--config``."""
    if args.config is None:
        return [config]
    if args.engine_args:
        raise ValueError("--engine-args is for one model; in --config, give each engine_args")
    from openai_frontend.gateway_config import per_model_configs, read_config

    return per_model_configs(read_config(args.config), config, config.model_path)


def engine_kwargs(config: ServerConfig, enable_lora: bool) -> dict:
    """The chosen backend's constructor arguments, from the one-model flags."""
    common = {
        "model_path": config.model_path,
        "served_model_name": config.served_model_name,
        "max_model_len": config.max_model_len,
    }
    if config.engine == "remote":
        if not config.upstreams:
            raise ValueError("--engine remote needs at least one --upstream URL")
        if config.engine_args:
            raise ValueError("--engine-args: the remote engine's upstreams take their own")
        return {
            **common,
            "upstreams": list(config.upstreams),
            "upstream_model": config.upstream_model,
            "api_key": config.upstream_api_key,
            "scheduling_policy": config.scheduling_policy,
            "routing": config.routing,
        }
    if config.upstreams:
        raise ValueError("--upstream is for --engine remote")
    if config.engine == "synthetic":
        return common
    if config.task == "embed":
        _check_embed(config, enable_lora)
    lora = {
        "enable_lora": enable_lora,
        "max_loras": config.max_loras,
        "max_lora_rank": config.max_lora_rank,
        "max_cpu_loras": config.max_cpu_loras,
    }
    parallel = {
        "tensor_parallel_size": config.tensor_parallel_size,
        "pipeline_parallel_size": config.pipeline_parallel_size,
    }
    if config.engine == "trtllm":
        return {**common, **lora, **parallel, **_trtllm_kwargs(config, enable_lora)}
    return {
        **common,
        **lora,
        **parallel,
        "scheduling_policy": config.scheduling_policy,
        "distributed_executor_backend": config.distributed_executor_backend,
        "runner": "pooling" if config.task == "embed" else "generate",
        "base_via_zero_lora": config.base_via_zero_lora,
        "dtype": config.dtype or default_dtype(config.model_path),
        "enforce_eager": config.enforce_eager,
        "engine_args": dict(config.engine_args),
        "otlp_traces_endpoint": config.otlp_traces_endpoint,
    }


def _check_embed(config: ServerConfig, enable_lora: bool) -> None:
    """What an in-process embedding model cannot have, refused before anything loads."""
    from openai_frontend.gateway_config import EMBED_NOT_ON_TRTLLM, EMBED_WITHOUT_LORA

    if config.engine == "trtllm":
        raise ValueError(EMBED_NOT_ON_TRTLLM)
    if enable_lora:
        raise ValueError(EMBED_WITHOUT_LORA)


def _trtllm_kwargs(config: ServerConfig, enable_lora: bool) -> dict:
    """TensorRT-LLM's own: it must know every adapter folder at start, not only --lora's."""
    from openai_frontend.adapters import declared_adapter_paths

    return {
        "dtype": config.dtype or "auto",
        "enforce_eager": config.enforce_eager,
        "lora_dirs": declared_adapter_paths(config) if enable_lora else [],
        "lora_runtime_loads": config.enable_lora_management,
        "extra_llm_args": {**config.engine_args, **config.llm_args},
    }


def setup_logging(args: argparse.Namespace) -> None:
    """The server's log at ``--log-level``; the access log is one bare JSON object per
    line, for log shippers."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    access = logging.getLogger("openai_frontend.access")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn that exits 0 after a graceful SIGTERM drain.

        uvicorn re-raises the signal it caught once it has shut down, so the process
        would die "by SIGTERM"; a drained shutdown is a clean exit for us.
        """

        @contextlib.contextmanager
        def capture_signals(self):
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()

    return Server


def _default_model(cache: Path | None) -> Path:
    """Prepare the default model in a child process, so its memory is not kept."""
    target = default_model_dir(cache)
    if not is_prepared(target):
        command = [sys.executable, "-m", "openai_frontend.cli", "prepare-model"]
        if cache:
            command += ["--cache-dir", str(cache)]
        subprocess.run(command, check=True)
    return target


if __name__ == "__main__":
    sys.exit(main())
