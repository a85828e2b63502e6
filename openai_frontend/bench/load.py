"""Offer a run's requests to the server: arrivals, a concurrency cap, warm-up, an end.

Arrivals come all at once (``rate`` infinite) or as a gamma process of the given rate:
``burstiness`` 1 is Poisson, lower is burstier, higher is more even (as in
``vllm bench serve``). At most ``concurrency`` requests are in flight; a request's
clock starts when it gets a slot, so client-side queueing is not counted as latency.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from tqdm import tqdm

from openai_frontend.bench.client import RequestShape, timed_request
from openai_frontend.bench.corpus import Prompt, Tokenizer
from openai_frontend.bench.metrics import RequestRecord


@dataclass(frozen=True)
class LoadPlan:
    concurrency: int
    num_requests: int | None = None  # one of these two ends the run
    duration: float | None = None
    request_rate: float = math.inf
    burstiness: float = 1.0
    warmup: int = 0
    seed: int = 0


def arrival_gaps(rate: float, burstiness: float, rng: random.Random) -> Iterator[float]:
    """Seconds between arrivals: zero for an infinite rate, else gamma-distributed."""
    if math.isinf(rate):
        return itertools.repeat(0.0)
    scale = 1.0 / (rate * burstiness)
    return (rng.gammavariate(burstiness, scale) for _ in itertools.count())


async def run_load(
    client: httpx.AsyncClient,
    shape: RequestShape,
    prompts: Iterator[Prompt],
    plan: LoadPlan,
    tokenizer: Tokenizer | None,
    label: str = "",
) -> tuple[list[RequestRecord], float]:
    """The records of every request sent and the run's duration (warm up first)."""
    gate = asyncio.Semaphore(plan.concurrency)
    records: list[RequestRecord] = []
    tasks: list[asyncio.Task] = []
    # disable=None: a bar on a terminal, none in a log file.
    progress = tqdm(total=plan.num_requests, desc=label, unit="req", leave=False, disable=None)
    start = time.perf_counter()

    async def one(prompt: Prompt, record: RequestRecord) -> None:
        async with gate:
            await timed_request(client, shape, prompt, record, start, tokenizer)
        progress.update()

    gaps = arrival_gaps(plan.request_rate, plan.burstiness, random.Random(plan.seed))
    for index in itertools.count():
        if plan.num_requests is not None and index >= plan.num_requests:
            break
        if plan.duration is not None and time.perf_counter() - start >= plan.duration:
            break
        prompt = next(prompts, None)
        if prompt is None:
            progress.write(f"prompts ran out after {index} requests")
            break
        record = RequestRecord(index=index, sent=0.0)
        records.append(record)
        tasks.append(asyncio.create_task(one(prompt, record)))
        await _wait_for_arrival(next(gaps), gate, plan)
    await asyncio.gather(*tasks)
    duration = time.perf_counter() - start
    progress.close()
    return records, duration


async def _wait_for_arrival(gap: float, gate: asyncio.Semaphore, plan: LoadPlan) -> None:
    """Sleep until the next arrival; in duration mode with no rate, until a slot frees,
    so the run does not queue up an unbounded number of requests."""
    if gap > 0:
        await asyncio.sleep(gap)
    elif plan.duration is not None:
        while gate.locked():
            await asyncio.sleep(0.005)
    else:
        await asyncio.sleep(0)


async def warm_up(client, shape, prompts, plan: LoadPlan, tokenizer) -> None:
    """Requests whose figures are thrown away: connections, caches and threads warm up."""
    if plan.warmup <= 0:
        return
    gate = asyncio.Semaphore(plan.concurrency)
    start = time.perf_counter()

    async def one(prompt: Prompt) -> None:
        async with gate:
            await timed_request(client, shape, prompt, RequestRecord(-1, 0.0), start, tokenizer)

    batch = [prompt for prompt in itertools.islice(prompts, plan.warmup)]
    await asyncio.gather(*(one(prompt) for prompt in batch))
