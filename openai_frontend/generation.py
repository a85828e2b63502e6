"""Fan a request out into engine sequences and merge their deltas back, tagged by choice.

``n`` choices per prompt (and several prompts for completions) become separate engine
requests, so every engine only ever generates one sequence at a time. With a seed, the
i-th choice gets ``seed + i``: reproducible, yet the choices differ.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing
from typing import Protocol

from engines.base import (
    Delta,
    Engine,
    EngineDead,
    EngineError,
    GenerateRequest,
    InvalidRequest,
    SamplingParams,
)
from lora.registry import AdapterNotFound
from openai_frontend.config import ServerConfig
from openai_frontend.errors import APIError

ChoiceDelta = tuple[int, Delta]


class Lease(Protocol):
    """Something a request holds while it runs (an adapter's in-flight count)."""

    def acquire(self) -> None: ...

    async def ready(self) -> None:
        """Wait until the engine has what is leased (an adapter loading on demand)."""

    async def release(self) -> None: ...


def check_fan_out(prompts: int, n: int, config: ServerConfig) -> None:
    """Refuse a request that would start more engine work than one request may.

    Checked before any prompt is tokenized: a small body (20,000 one-token prompts,
    n=128) would otherwise become millions of engine sequences.
    """
    if prompts > config.max_prompts_per_request:
        raise APIError(
            f"The request has {prompts} prompts; this server takes at most "
            f"{config.max_prompts_per_request} per request (--max-prompts-per-request).",
            param="prompt",
        )
    if prompts * n > config.max_sequences_per_request:
        raise APIError(
            f"The request asks for {prompts * n} sequences (n={n} for each of {prompts} "
            f"prompt{'s' if prompts > 1 else ''}); this server generates at most "
            f"{config.max_sequences_per_request} per request (--max-sequences-per-request).",
            param="n",
        )


def choice_requests(
    request_id: str,
    prompts: list[list[int]],
    sampling: SamplingParams,
    n: int,
    adapter: object,
    prompt_cache_key: str | None = None,
) -> list[GenerateRequest]:
    """One engine request per (prompt, choice); choice index = prompt * n + i (OpenAI)."""
    requests = []
    for prompt_index, prompt_ids in enumerate(prompts):
        for i in range(n):
            index = prompt_index * n + i
            params = sampling
            if sampling.seed is not None and index:
                params = dataclasses.replace(sampling, seed=sampling.seed + index)
            requests.append(
                GenerateRequest(
                    f"{request_id}-{index}", prompt_ids, params, adapter, prompt_cache_key
                )
            )
    return requests


async def _tagged(
    engine: Engine, index: int, request: GenerateRequest
) -> AsyncIterator[ChoiceDelta]:
    async with aclosing(engine.generate(request)) as deltas:
        async for delta in deltas:
            yield index, delta


async def run_choices(
    engine: Engine, requests: list[GenerateRequest], lease: Lease | None = None
) -> AsyncIterator[ChoiceDelta]:
    """Deltas of every choice as they come; closing this aborts every sequence left.

    ``lease`` is held from the first step to the last, so an adapter that is unloaded
    meanwhile keeps its engine slot until this request is done with it.
    """
    acquired = False
    try:
        if lease is not None:
            lease.acquire()  # the adapter may have been unloaded since lookup: a 404
            acquired = True
            await lease.ready()
        if len(requests) == 1:  # the common case, tagged here: one generator hop less a frame
            async with aclosing(engine.generate(requests[0])) as deltas:
                async for delta in deltas:
                    yield 0, delta
            return
        streams = [_tagged(engine, index, request) for index, request in enumerate(requests)]
        async for item in _merge(streams):
            yield item
    except (InvalidRequest, EngineDead, EngineError, AdapterNotFound) as exc:
        raise engine_error(exc) from None  # the one place they become API errors
    finally:
        if acquired:
            await lease.release()


_DONE = object()


async def _merge(streams: list[AsyncIterator[ChoiceDelta]]) -> AsyncIterator[ChoiceDelta]:
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(stream: AsyncIterator[ChoiceDelta]) -> None:
        try:
            async with aclosing(stream):
                async for item in stream:
                    await queue.put(item)
        except Exception as exc:  # handed to the consumer, which re-raises it
            await queue.put(exc)
        finally:
            await queue.put(_DONE)

    tasks = [asyncio.create_task(pump(stream)) for stream in streams]
    try:
        remaining = len(tasks)
        while remaining:
            item = await queue.get()
            if item is _DONE:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def primed(stream: AsyncIterator[ChoiceDelta]) -> AsyncIterator[ChoiceDelta]:
    """Start the stream and wait for its first delta, so refusals become a plain 4xx.

    The engine checks parameters (and compiles grammars) before it yields anything; by
    waiting here, those errors are answered before any response header is sent.
    """
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = None
    except BaseException:  # already an API error if it came from the engine (run_choices)
        await stream.aclose()
        raise

    return _Resumed(stream, first)


class _Resumed:
    """The stream with its first delta put back. Every later delta passes straight
    through: ``__anext__`` hands out the stream's own awaitable, so this adds no
    generator frame per delta (an async generator here cost ~0.5 µs a frame).
    ``aclose`` closes the stream, which aborts the engine request."""

    __slots__ = ("_first", "_stream")

    def __init__(self, stream: AsyncIterator[ChoiceDelta], first: ChoiceDelta | None) -> None:
        self._stream = stream
        self._first = first

    def __aiter__(self) -> _Resumed:
        return self

    def __anext__(self) -> Awaitable[ChoiceDelta]:
        first, self._first = self._first, None
        return _ready(first) if first is not None else self._stream.__anext__()

    async def aclose(self) -> None:
        self._first = None
        await self._stream.aclose()


async def _ready(item: ChoiceDelta) -> ChoiceDelta:
    return item


def engine_error(exc: BaseException) -> BaseException:
    """Engine exceptions as the API errors a client sees."""
    if isinstance(exc, InvalidRequest):
        return APIError(exc.message, param=exc.param, status=exc.status, code=exc.code)
    if isinstance(exc, AdapterNotFound):
        return APIError(str(exc), status=404, code="model_not_found")
    if isinstance(exc, EngineError):
        return APIError(exc.message, status=exc.status)
    if isinstance(exc, EngineDead):
        return APIError("The engine failed; the server is not ready.", status=503)
    return exc
