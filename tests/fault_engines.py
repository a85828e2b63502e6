"""An engine that fails on purpose, and the in-process app that serves it.

``FaultInjectingEngine`` replaces the real engine to produce the faults a real one
produces rarely or never on demand (an exception before or after the first token, an
odd finish reason). Its "text" is a filler token and its tokenizer is UTF-8 bytes: it
measures the frontend alone and says nothing about a model. The app is the real one
(``create_app``), driven in-process through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from engines.base import ALL_SAMPLING, Delta, GenerateRequest, ModelInfo
from openai_frontend.app import create_app
from openai_frontend.config import ServerConfig

MODEL = "fault-injecting"
FILLER = "x"


@dataclass
class FaultInjectingEngine:
    """Streams ``tokens_before_fault`` filler deltas, then raises ``raises`` or, if
    that is None, finishes with ``finish_reason``."""

    tokens_before_fault: int = 0
    raises: BaseException | None = None
    finish_reason: str = "stop"
    max_model_len: int = 4096
    supported_sampling: frozenset[str] = ALL_SAMPLING
    supports_lora: bool = False
    in_process: bool = True
    #: Every request generate() was called with, in order.
    generated: list[GenerateRequest] = field(default_factory=list)
    #: Sequences running right now, and the most that ever ran at once.
    running: int = 0
    peak_running: int = 0
    #: Set to hold every sequence after its first delta until the test releases it.
    hold: asyncio.Event | None = None

    async def start(self) -> None:
        return None

    def is_ready(self) -> bool:
        return True

    def model(self) -> ModelInfo:
        return ModelInfo(id=MODEL, max_model_len=self.max_model_len)

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Delta]:
        self.generated.append(request)
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        try:
            for produced in range(1, self.tokens_before_fault + 1):
                await asyncio.sleep(0)
                yield Delta(FILLER, [ord(FILLER)], produced)
                if self.hold is not None:
                    await self.hold.wait()
            if self.raises is not None:
                raise self.raises
            yield Delta("", [], self.tokens_before_fault, self.finish_reason)
        finally:
            self.running -= 1

    async def abort(self, request_id: str) -> None:
        return None

    def num_unfinished_requests(self) -> int:
        return self.running

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        return list(text.encode())

    def detokenize(self, token_ids: list[int]) -> str:
        return bytes(token_ids).decode(errors="replace")

    async def add_adapter(self, adapter: object) -> None:
        raise NotImplementedError

    async def remove_adapter(self, adapter: object) -> None:
        raise NotImplementedError

    async def loaded_adapter_ids(self) -> list[int]:
        return []

    async def shutdown(self) -> None:
        return None


@contextlib.asynccontextmanager
async def in_process_client(
    engine: FaultInjectingEngine, *, raise_app_exceptions: bool = False, **config: object
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app around ``engine`` (chatml template, ``config`` as ServerConfig),
    started through its own lifespan as uvicorn starts it, and ready.

    An exception that leaves the app reaches the server (uvicorn logs it and closes the
    connection); here it is raised into the test with ``raise_app_exceptions``, else
    ignored, the app's answer kept.
    """
    settings = ServerConfig(
        model_path=Path("/nonexistent-model-folder"),
        served_model_name=MODEL,
        chat_template="chatml",
        **config,
    )
    app = create_app(settings, engine)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with app.router.lifespan_context(app):
        while not all(served.is_ready() for served in app.state.server.models):
            await asyncio.sleep(0)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@contextlib.contextmanager
def served_over_http(engine: FaultInjectingEngine, **config: object) -> Iterator[str]:
    """The real app around ``engine`` (as ``in_process_client`` builds it) served by
    uvicorn on a free local port in a thread, for a browser; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    settings = ServerConfig(
        model_path=Path("/nonexistent-model-folder"),
        served_model_name=MODEL,
        chat_template="chatml",
        **config,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fault-injecting server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
