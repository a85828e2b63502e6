"""The ASGI app: routers, OpenAI-shaped errors, and the engine's lifecycle.

The engine loads in the background so ``/health`` answers at once and ``/health/ready``
turns ready when the model is loaded; a failed load stops the server with an error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from engines.base import Engine
from openai_frontend.config import ServerConfig
from openai_frontend.errors import install_error_handlers
from openai_frontend.routers import chat, completions, health, models, tokenize
from openai_frontend.state import ServerState

log = logging.getLogger(__name__)


def create_app(config: ServerConfig, engine: Engine) -> FastAPI:
    state = ServerState(config=config, engine=engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(_load(engine))
        try:
            yield
        finally:
            loading.cancel()
            await engine.shutdown()

    app = FastAPI(title="openai-frontend", lifespan=lifespan)
    app.state.server = state
    install_error_handlers(app)
    for module in (chat, completions, models, health, tokenize):
        app.include_router(module.router)
    return app


async def _load(engine: Engine) -> None:
    try:
        await engine.start()
    except asyncio.CancelledError:
        raise
    except BaseException:
        log.exception("the engine failed to start; stopping the server")
        os.kill(os.getpid(), signal.SIGTERM)
        raise
    log.info("engine ready: %s", engine.model().id)
