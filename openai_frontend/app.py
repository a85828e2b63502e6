"""The ASGI app: routers, OpenAI-shaped errors, and the engine's lifecycle.

The engine loads in the background so ``/health`` answers at once and ``/health/ready``
turns ready when the model is loaded; a failed load stops the server with an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from engines.base import Embedder, Engine
from openai_frontend.adapters import build_on_demand, build_registry, load_into_engine
from openai_frontend.background import BackgroundJobs
from openai_frontend.batch.runner import BatchRunner, InProcessSender
from openai_frontend.batch.store import BatchStore
from openai_frontend.config import ServerConfig
from openai_frontend.default_model import is_default_model
from openai_frontend.errors import install_error_handlers
from openai_frontend.gc_pause import freeze_start_up_heap
from openai_frontend.loop_lag import watch_loop_lag
from openai_frontend.metrics_multiprocess import refresh_every
from openai_frontend.middleware import (
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    RequestIdMiddleware,
    UnexpectedErrorMiddleware,
)
from openai_frontend.responses.store import SQLiteResponseStore, open_store
from openai_frontend.routers import (
    batches,
    chat,
    completions,
    embeddings,
    files,
    health,
    lora_admin,
    messages,
    models,
    render,
    responses,
    scoring,
    tokenize,
    ui,
)
from openai_frontend.sanity import check_default_model
from openai_frontend.state import ServedModel, ServerState

log = logging.getLogger(__name__)


def create_app(config: ServerConfig, engine: Engine) -> FastAPI:
    """The app for one model; adapter declarations are validated here, before loading."""
    return create_gateway(config, [serve_model(config, engine)])


def serve_model(config: ServerConfig, engine: Engine) -> ServedModel:
    """One model of the gateway, its adapters validated (before anything loads)."""
    if config.task == "embed" and not isinstance(engine, Embedder):
        raise ValueError(f"the {config.engine} engine cannot serve embeddings (--task embed)")
    registry = build_registry(config, engine)
    return ServedModel(
        config=config,
        engine=engine,
        registry=registry,
        on_demand=build_on_demand(config, registry, engine),
    )


def create_gateway(config: ServerConfig, served: list[ServedModel]) -> FastAPI:
    """The app for any number of models, routed by the request's ``model``."""
    state = ServerState(config=config, models=served)
    # Opened here, before any engine starts: a store that cannot be written stops the
    # server at once (ValueError, as for a bad flag).
    store = open_store(
        config.response_store,
        config.responses_ttl,
        config.responses_max_bytes,
        shared=config.multiprocess,
    )
    jobs: BackgroundJobs = BackgroundJobs()
    batch_store = BatchStore(store) if isinstance(store, SQLiteResponseStore) else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = [asyncio.create_task(_load(state, model)) for model in served]
        probes = [asyncio.create_task(watch_loop_lag(state.metrics.loop_lag))]
        if config.multiprocess:
            probes.append(asyncio.create_task(refresh_every(state.metrics.refresh)))
        # Batches an earlier process left unfinished go on, in one API process only.
        if batch_store is not None and config.api_server_index == 0:
            await runner.resume()
        try:
            yield
        finally:
            for task in [*loading, *probes]:
                task.cancel()
            # Before the engine and the store close: each job records how it ended.
            await jobs.stop(config.drain_timeout)
            await runner.close()
            await sender.close()
            await asyncio.gather(*(model.engine.shutdown() for model in served))
            await asyncio.to_thread(store.close)
            if state.tracer is not None:  # flushes the spans still batched
                await asyncio.to_thread(state.tracer.shutdown)

    app = FastAPI(title="openai-frontend", lifespan=lifespan, **_docs_urls(config))
    app.state.server = state
    app.state.response_store = store
    app.state.background = jobs
    app.state.batch_store = batch_store
    sender = InProcessSender(app)
    runner = BatchRunner(
        batch_store,  # type: ignore[arg-type]  # None: the routes refuse before using it
        sender,
        config.batch_concurrency,
        ready=lambda: all(model.is_ready() for model in served),
    )
    app.state.batch_runner = runner
    install_error_handlers(app)
    _add_middleware(app, config, state)
    routers = (chat, completions, responses, messages, embeddings, models, health, tokenize, render)
    routers += (files, batches)
    for module in routers:
        app.include_router(module.router)
    app.include_router(scoring.router)
    if config.enable_lora_management:
        app.include_router(lora_admin.router)
    if config.ui:
        app.include_router(ui.router)
    return app


def _docs_urls(config: ServerConfig) -> dict:
    """FastAPI's doc pages, or none (``--no-docs``: then they are 404s)."""
    if config.docs:
        return {}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}


def _add_middleware(app: FastAPI, config: ServerConfig, state: ServerState) -> None:
    """Outermost first: request id and log, CORS, body limit, user keys, then the last
    resort for a bug (innermost, so its 500 passes through all the others)."""
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(
        ApiKeyMiddleware, keys=config.api_keys, protect_metrics=config.protect_metrics
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_request_bytes)
    if config.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.allowed_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            # Any header: the SDKs send their own (x-stainless-*, x-api-key,
            # anthropic-version); no credentials are allowed, so this opens nothing else.
            allow_headers=["*"],
            expose_headers=["X-Request-Id"],
        )
    app.add_middleware(
        RequestIdMiddleware,
        on_status=state.metrics.count_response,
        aliases=[messages.REQUEST_ID_ALIAS],
    )


async def _load(state: ServerState, served: ServedModel) -> None:
    engine = served.engine
    try:
        await engine.start()
        if served.registry is not None:
            await load_into_engine(served.registry, engine)
    except asyncio.CancelledError:
        raise
    except BaseException:
        log.exception("the engine of '%s' failed to start; stopping the server", served.name)
        state.engine_failed = True
        state.request_stop()
        raise
    log.info("engine ready: %s (dtype %s)", engine.model().id, engine.model().dtype)
    if (
        served.task == "generate"
        and engine.in_process
        and not getattr(engine, "synthetic", False)  # its " tok" is by design, not a fault
        and is_default_model(served.config.model_path)
    ):
        await check_default_model(engine, served.resolver)
    freeze_start_up_heap()
    served.started = True  # only now: the check's request is done before any client's
    if engine.in_process:
        await _watch(state, engine)


#: How often the engine's health is checked, and how long "failed" is reported before
#: the process exits (so load balancers see it).
WATCH_INTERVAL_S = 1.0
FAILED_GRACE_S = 2.0


async def _watch(state: ServerState, engine: Engine) -> None:
    """The policy for an engine that dies: report not-ready, then exit non-zero.

    Streams on the dead engine already ended with an error event and [DONE]; a
    supervisor (systemd, Kubernetes, `docker --restart`) restarts the process, which is
    safer than re-creating an engine inside a process whose engine just crashed.
    """
    while engine.is_ready():
        await asyncio.sleep(WATCH_INTERVAL_S)
    log.error("the engine died; reporting not-ready and exiting with status 1")
    state.engine_failed = True
    await asyncio.sleep(FAILED_GRACE_S)
    state.request_stop()
