"""What every request handler needs: the engine, its model, templates and defaults."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from fastapi import Request
from opentelemetry.trace import Span

from engines.base import Engine, ModelInfo, Task
from lora.on_demand import OnDemandAdapters
from lora.peft_folder import AdapterError
from lora.registry import Adapter, AdapterRegistry
from openai_frontend.adapters import AdapterLease
from openai_frontend.admission import Admission, Deadline, with_deadline
from openai_frontend.auth import batch_owner
from openai_frontend.config import ServerConfig
from openai_frontend.disconnect import cancel_on_disconnect
from openai_frontend.errors import APIError, model_not_found
from openai_frontend.generation import ChoiceDelta, primed, run_choices
from openai_frontend.metrics import Metrics
from openai_frontend.parsing.registry import check_parser_names
from openai_frontend.priority import PRIORITY_LIMIT
from openai_frontend.sampling import read_generation_defaults
from openai_frontend.tracing import RequestTracer, end_span, traced
from templates.sources import TemplateResolver, load_template_option, read_model_templates

T = TypeVar("T")

#: The admission priority of a batch line: after every interactive request (whose
#: priorities are clamped to -PRIORITY_LIMIT..PRIORITY_LIMIT), so a batch never starves chat.
BATCH_PRIORITY = PRIORITY_LIMIT + 1
#: What a request that arrives while the model loads is told to wait, in seconds.
LOADING_RETRY_AFTER_S = 5
#: Texts at least this long are tokenized off the event loop (~1 ms of tokenizing).
LONG_TEXT_CHARS = 32_000


@dataclass
class ServedModel:
    """One model of the gateway: its engine, adapters, templates and sampling defaults.

    ``config`` is this model's own settings (name, folder, engine, template, defaults);
    the server-wide ones (host, access, limits) are the same in every model's config.
    """

    config: ServerConfig
    engine: Engine
    registry: AdapterRegistry | None = None
    #: ``--lora-on-demand``: adapters loaded from the ``--lora-root`` folders on first use.
    on_demand: OnDemandAdapters | None = None
    #: When the server started serving it (the ``created`` of its model card).
    created: int = field(default_factory=lambda: int(time.time()))
    #: Set once the engine loaded, its adapters are in and the start-up checks ran.
    started: bool = field(default=False, init=False)
    resolver: TemplateResolver = field(init=False)
    sampling_defaults: dict = field(init=False)

    def __post_init__(self) -> None:
        check_parser_names(self.config.reasoning_parser, self.config.tool_call_parser)
        server_template = (
            load_template_option(self.config.chat_template) if self.config.chat_template else None
        )
        self.resolver = TemplateResolver(
            model=read_model_templates(self.config.model_path),
            server_template=server_template,
            trust_request_template=self.config.trust_request_chat_template,
            max_request_template_bytes=self.config.max_chat_template_bytes,
        )
        self.sampling_defaults = {
            **read_generation_defaults(self.config.model_path),
            **self.config.generation_overrides,
        }

    @property
    def name(self) -> str:
        return self.config.served_model_name

    @property
    def task(self) -> Task:
        """What it serves: "generate" (chat, completions) or "embed" (/v1/embeddings)."""
        return self.config.task

    def is_ready(self) -> bool:
        """Serving: started, and the engine has not failed since."""
        return self.started and self.engine.is_ready()

    def adapter(self, name: str) -> Adapter | None:
        """This model's adapter called ``name``, if it has one (or, on demand, if a
        ``--lora-root`` folder holds it: a folder that is no adapter for it is a 400)."""
        if self.on_demand is not None:
            try:
                return self.on_demand.find(name)
            except AdapterError as exc:
                raise APIError(str(exc), param="model") from None
        return self.registry.lookup(name) if self.registry is not None else None


@dataclass(frozen=True)
class Target:
    """What a request's ``model`` resolved to: a served model, maybe with an adapter."""

    served: ServedModel
    adapter: Adapter | None = None

    @property
    def info(self) -> ModelInfo:
        return self.served.engine.model()

    @property
    def engine(self) -> Engine:
        return self.served.engine

    @property
    def label(self) -> str:
        """The metrics label: the adapter's own name, else the model's."""
        return self.adapter.name if self.adapter is not None else self.info.id

    def lease(self) -> AdapterLease | None:
        if self.adapter is None or self.served.registry is None:
            return None
        return AdapterLease(self.served.registry, self.adapter, self.served.on_demand)


@dataclass
class ServerState:
    config: ServerConfig
    models: list[ServedModel]
    metrics: Metrics = field(init=False)
    #: Only with --max-concurrent-requests: unlimited servers skip admission entirely.
    admission: Admission | None = field(init=False)
    #: Only with --otlp-traces-endpoint: one span per generation request.
    tracer: RequestTracer | None = field(init=False)
    #: Set when an engine could not start or died; the process then exits non-zero.
    engine_failed: bool = False
    #: Asks the server to shut down (the CLI points it at uvicorn's exit flag).
    request_stop: Callable[[], None] = field(default=lambda: os.kill(os.getpid(), signal.SIGTERM))

    def __post_init__(self) -> None:
        self.metrics = Metrics(_api_server(self.config))
        self.admission = None
        if self.config.max_concurrent_requests is not None:
            self.admission = Admission(
                self.config.max_concurrent_requests,
                self.config.max_queued_requests,
                self.config.queue_timeout,
            )
            self.metrics.watch_admission(self.admission)
        endpoint = self.config.otlp_traces_endpoint
        self.tracer = RequestTracer(endpoint) if endpoint else None
        self.metrics.watch_engines([served.engine for served in self.models])
        for served in self.models:
            if served.on_demand is not None:
                self.metrics.watch_on_demand(served.on_demand, served.name)

    @property
    def lora_model(self) -> ServedModel | None:
        """The model whose adapters the admin endpoints manage (the first with LoRA)."""
        return next((m for m in self.models if m.registry is not None), None)

    async def generate(
        self,
        target: Target,
        requests: list,
        prompt_tokens: int,
        request: Request,
        *,
        watch_client: bool = True,
    ) -> AsyncIterator[ChoiceDelta]:
        """Admit, run, time and bound one request's choices; started before returning.

        Everything that can refuse the request cheaply (rendering, tokenizing, sampling
        checks) has run already; from here the request holds an engine slot. Until the
        first delta (the wait for a slot, then the prefill) nothing reads the client's
        connection, so a client that leaves meanwhile is watched for here: its wait or
        its engine request is cancelled (ClientDisconnected, a 499), not run for nobody.
        A background generation (``watch_client=False``) runs whoever waits for it.
        """
        fields = log_fields(request)
        queue_priority = requests[0].sampling.priority
        if batch_owner(request.scope) is not None:
            # A batch line waits behind every interactive request, whatever it asked.
            queue_priority, fields["batch"] = BATCH_PRIORITY, True
            requests = batch_line_requests(requests, self.config.scheduling_policy)
        if self.tracer is None:
            started = self._start(target, requests, prompt_tokens, fields, queue_priority)
            return await _watched(request, started, watch_client)
        request_id = getattr(request.state, "request_id", None)
        span, context = self.tracer.start(f"POST {request.url.path}", request.headers, request_id)
        requests = [dataclasses.replace(each, trace_headers=context) for each in requests]
        try:
            started = self._start(target, requests, prompt_tokens, fields, queue_priority, span)
            return await _watched(request, started, watch_client)
        except BaseException as exc:  # refused, timed out or left before its first delta
            end_span(span, fields, exc)
            raise

    async def _start(
        self,
        target: Target,
        requests: list,
        prompt_tokens: int,
        log_fields: dict,
        queue_priority: int,
        span: Span | None = None,
    ) -> AsyncIterator[ChoiceDelta]:
        deadline = Deadline.start(self.config.request_timeout)  # the queue wait counts
        running = run_choices(target.engine, requests, target.lease())
        # Each wrapper is one more async-generator hop per token: add only those in use.
        if self.admission is not None:
            # One slot per engine sequence: n=128 is 128 requests' worth of engine work.
            await self.admission.enter(len(requests), queue_priority, deadline)
            running = self.admission.hold(running, len(requests))
        if deadline is not None:
            running = with_deadline(running, deadline)
        if target.adapter is not None:
            log_fields["adapter"] = target.adapter.name
        observed = self.metrics.observe(target.label, prompt_tokens, running, log_fields)
        if span is not None:
            observed = traced(span, observed, log_fields)
        return await primed(observed)

    async def tokenize(self, target: Target, text: str, add_special_tokens: bool) -> list[int]:
        """Token ids; a long text is tokenized in a worker thread so streams keep flowing."""
        if len(text) < LONG_TEXT_CHARS:
            return target.engine.tokenize(text, add_special_tokens)
        return await asyncio.to_thread(target.engine.tokenize, text, add_special_tokens)

    def find(self, name: str) -> tuple[ServedModel, Adapter | None] | None:
        """The served model (and adapter) ``name`` names, or None."""
        for served in self.models:
            if name == served.name:
                return served, None
            adapter = served.adapter(name)
            if adapter is not None:
                return served, adapter
        return None

    def serves(self, name: str) -> bool:
        return self.find(name) is not None

    def model(self, name: str, task: Task | None = "generate") -> Target:
        """What ``name`` names (a model or adapter): 404 if unknown, 400 if it does not
        serve ``task`` (None: any), 503 while loading."""
        found = self.find(name)
        if found is None:
            raise model_not_found(name)
        served, adapter = found
        if task is not None and served.task != task:
            raise wrong_task(name, served.task)
        if not served.is_ready():
            raise APIError(
                f"The model `{name}` is still loading; retry shortly.",
                status=503,
                code="model_loading",
                headers={"Retry-After": str(LOADING_RETRY_AFTER_S)},
            )
        return Target(served, adapter)


async def _watched(request: Request, work: Awaitable[T], watch_client: bool) -> T:
    """``work``, cancelled if the client leaves first, unless the client is not watched."""
    return await (cancel_on_disconnect(request, work) if watch_client else work)


def wrong_task(name: str, served: Task) -> APIError:
    """A request for what the model does not serve: it names the model and what it does."""
    if served == "embed":
        message = (
            f"The model `{name}` is an embedding model: it serves /v1/embeddings, "
            "/v1/rerank and /v1/score, not chat or text completions."
        )
    else:
        message = (
            f"The model `{name}` does not support embeddings: it generates text "
            "(chat and completions). Use an embedding model (served with --task embed)."
        )
    return APIError(message, param="model")


def get_state(request: Request) -> ServerState:
    return request.app.state.server


def batch_line_requests(requests: list, policy: str) -> list:
    """A batch line's engine requests: under ``--scheduling-policy priority`` the engine
    schedules by each request's own priority too, so there it is ``BATCH_PRIORITY`` as
    well (else a line asking -10 would pass interactive requests inside the engine).
    Under ``fcfs`` the engine takes no priority (vLLM refuses one), and a line cannot ask
    for one (a 400), so they stay as they are."""
    if policy != "priority":
        return requests
    return [
        dataclasses.replace(
            each, sampling=dataclasses.replace(each.sampling, priority=BATCH_PRIORITY)
        )
        for each in requests
    ]


def log_fields(request: Request) -> dict:
    """This request's extra access-log fields (written by RequestIdMiddleware at the end)."""
    return request.scope.setdefault("state", {}).setdefault("log_fields", {})


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def _api_server(config: ServerConfig) -> tuple[int, int] | None:
    """(index, count) of this API process when it is one of several, else None."""
    if not config.multiprocess:
        return None
    return config.api_server_index, config.api_server_count
