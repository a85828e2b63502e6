"""One embeddings request through the engine: admitted, bounded in time, and counted.

The same serving controls as generation: with ``--max-concurrent-requests`` the request
takes one slot per input, as chat takes one per choice: each input is a sequence in the
engine's batch, so 2,048 inputs are not one request's worth of engine work. A batch
larger than the server's slots takes them all (and runs alone) rather than being
refused: an embedding is a single forward pass, over in one engine step, while a
generated sequence holds its slot for every token. ``--request-timeout`` stops it with a
408 (its wait for the slots counts, and ``--queue-timeout`` bounds that wait), and its
prompt tokens and latency land in the model's metrics and the access log.
"""

from __future__ import annotations

import asyncio
import time

from engines.base import EngineDead, EngineError, InvalidRequest
from openai_frontend.admission import Deadline
from openai_frontend.generation import engine_error
from openai_frontend.state import BATCH_PRIORITY, ServerState, Target, new_id


async def run_embedding(
    state: ServerState,
    target: Target,
    inputs: list[list[int]],
    dimensions: int | None,
    log_fields: dict,
) -> list[list[float]]:
    """One vector per input, in order; engine failures become API errors here."""
    deadline = Deadline.start(state.config.request_timeout)  # the queue wait counts
    slots = 0 if state.admission is None else min(len(inputs), state.admission.max_running)
    if state.admission is not None:
        # A batch line (marked in its log fields by the runner) waits behind interactive ones.
        priority = BATCH_PRIORITY if log_fields.get("batch") else 0
        await state.admission.enter(slots, priority, deadline)
    started = time.perf_counter()
    try:
        return await _bounded(target, inputs, dimensions, deadline)
    except (InvalidRequest, EngineDead, EngineError) as exc:
        raise engine_error(exc) from None
    finally:
        if state.admission is not None:
            state.admission.leave(slots)
        _count(state, target.label, sum(map(len, inputs)), time.perf_counter() - started)
        log_fields.update(model=target.label, prompt_tokens=sum(map(len, inputs)))


async def _bounded(
    target: Target, inputs: list[list[int]], dimensions: int | None, deadline: Deadline | None
) -> list[list[float]]:
    work = target.engine.embed(new_id("embd"), inputs, dimensions)
    if deadline is None:
        return await work
    try:
        return await asyncio.wait_for(work, deadline.remaining())
    except TimeoutError:
        raise deadline.error() from None


def _count(state: ServerState, model: str, prompt_tokens: int, elapsed: float) -> None:
    metrics = state.metrics
    metrics.e2e.labels(model).observe(elapsed)
    metrics.prompt_length.labels(model).observe(prompt_tokens)
    metrics.prompt_tokens.labels(model).inc(prompt_tokens)
