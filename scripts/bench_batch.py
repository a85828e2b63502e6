"""A batch against the same requests sent directly, and what each does to a chat user.

One ``openai-frontend serve`` of the default model, with ``--max-concurrent-requests``
(so there is an admission queue for priority to act in) and ``--batch-concurrency``.
Three phases, in one run and on the same prompts:

1. idle: a few streamed interactive chats, alone (their TTFT is the floor);
2. direct: the N requests at ``--concurrency`` (32), while the interactive chats repeat;
3. batch: the same N requests as one ``/v1/batches`` batch, polled until it ends, while
   the interactive chats repeat.

Prints, per phase, output tokens/s of the load and the interactive TTFT p50. Why both:
a batch trades its own speed for the interactive user's (its lines queue after every
interactive request), so its throughput next to direct load's says what that trade
costs, and the TTFT next to direct load's says what it buys.

    .venv/bin/python scripts/bench_batch.py [--lines 64] [--output-len 32]
        [--concurrency 32] [--batch-concurrency 32] [--probes 5] [--port 8013]

At 1,000 lines (README, "Batches": ``--lines 1000 --output-len 16 --batch-concurrency
28``): direct 59.0 tok/s with a chat's TTFT at 2,081 ms, the batch 61.7 tok/s with it at
757 ms (idle 316 ms). Earlier, smaller runs:
One run on a busy 2-core CPU machine (other jobs sharing it; SmolLM2-135M, float32),
``--lines 32 --output-len 16 --probes 4``: idle TTFT p50 300 ms; direct at 32, 63.6
tok/s and TTFT 1915 ms; the batch at ``--batch-concurrency 32``, 46.5 tok/s and TTFT
1808 ms (two probes each: a hint, not a measurement). With as many batch lines as
slots, an interactive request still waits for a line to finish; a lower
``--batch-concurrency`` leaves it a free slot. A second run, busier still, at the
default ``--batch-concurrency 4``: idle TTFT 517 ms; direct 31.7 tok/s, TTFT 691 ms;
the batch 13.5 tok/s, TTFT 592 ms: the chat user is barely slowed, the batch is slower.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import bounded, client_for, start_server, stream_chat, wait_ready  # noqa: E402

from openai_frontend.default_model import MODEL_NAME, ensure_default_model  # noqa: E402

DONE = ("completed", "failed", "cancelled", "expired")
PROBE = [{"role": "user", "content": "Say hello to the interactive user."}]


def bodies(lines: int, output_len: int) -> list[dict]:
    """The load's requests: distinct prompts, a fixed length (ignore_eos), greedy."""
    return [
        {
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": f"Tell story number {i} about a lighthouse."}],
            "max_tokens": output_len,
            "ignore_eos": True,
            "temperature": 0,
        }
        for i in range(lines)
    ]


async def probe_ttfts(client: httpx.AsyncClient, stop: asyncio.Event, most: int) -> list[float]:
    """Interactive streamed chats one after another, until ``stop`` or ``most`` of them:
    their TTFTs in ms."""
    ttfts: list[float] = []
    while not stop.is_set() and len(ttfts) < most:
        ttft, _ = await stream_chat(client, MODEL_NAME, PROBE, 8)
        ttfts.append(ttft * 1000)
    return ttfts


async def direct(client: httpx.AsyncClient, load: list[dict], concurrency: int) -> int:
    """The load at ``concurrency``; its completion tokens."""

    async def one(body: dict) -> int:
        answer = await client.post("/v1/chat/completions", json=body)
        answer.raise_for_status()
        return answer.json()["usage"]["completion_tokens"]

    return sum(await bounded(concurrency, [lambda body=body: one(body) for body in load]))


async def batch(client: httpx.AsyncClient, load: list[dict]) -> int:
    """The load as one batch, polled until it ends; its completion tokens."""
    lines = [
        json.dumps(
            {"custom_id": str(i), "method": "POST", "url": "/v1/chat/completions", "body": b}
        )
        for i, b in enumerate(load)
    ]
    made = await client.post(
        "/v1/files",
        files={"file": ("bench.jsonl", "\n".join(lines).encode())},
        data={"purpose": "batch"},
    )
    made.raise_for_status()
    body = {
        "input_file_id": made.json()["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    state = (await client.post("/v1/batches", json=body)).json()
    while state["status"] not in DONE:
        await asyncio.sleep(0.2)
        state = (await client.get(f"/v1/batches/{state['id']}")).json()
    if state["status"] != "completed" or state["request_counts"]["failed"]:
        raise RuntimeError(f"batch ended {state['status']}: {state['request_counts']}")
    output = await client.get(f"/v1/files/{state['output_file_id']}/content")
    answers = [json.loads(line)["response"]["body"] for line in output.text.splitlines()]
    return sum(answer["usage"]["completion_tokens"] for answer in answers)


async def phase(client: httpx.AsyncClient, load, probes: int) -> tuple[float, list[float]]:
    """(load tokens/s, interactive TTFTs in ms) with the probes running beside ``load``."""
    stop = asyncio.Event()
    probing = asyncio.create_task(probe_ttfts(client, stop, probes))
    started = time.perf_counter()
    tokens = await load
    wall = time.perf_counter() - started
    stop.set()
    return tokens / wall, await probing


def p50(values: list[float]) -> str:
    return f"{statistics.median(values):8.0f}" if values else "       -"


async def main(args: argparse.Namespace) -> None:
    flags = (
        *("--max-concurrent-requests", str(args.concurrency)),
        *("--max-queued-requests", str(args.lines * 2 + 64)),
        *("--batch-concurrency", str(args.batch_concurrency)),
        *("--response-store", str(Path(tempfile.mkdtemp()) / "bench-batch.sqlite3")),
    )
    server = start_server(ensure_default_model(), MODEL_NAME, args.port, *flags)
    try:
        async with client_for(args.port) as client:
            await wait_ready(client, server)
            load = bodies(args.lines, args.output_len)
            await direct(client, load[:2], 2)  # warm-up
            idle = await probe_ttfts(client, asyncio.Event(), args.probes)
            direct_rate, direct_ttft = await phase(
                client, direct(client, load, args.concurrency), args.probes
            )
            batch_rate, batch_ttft = await phase(client, batch(client, load), args.probes)
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"{args.lines} requests of {args.output_len} tokens; TTFT of a streamed chat beside")
    print("phase                              load tok/s   TTFT p50 ms   probes")
    print(f"idle                               {'-':>10}   {p50(idle):>11}   {len(idle)}")
    print(
        f"direct, concurrency {args.concurrency:<3}            {direct_rate:10.1f}"
        f"   {p50(direct_ttft):>11}   {len(direct_ttft)}"
    )
    print(
        f"batch, --batch-concurrency {args.batch_concurrency:<3}     {batch_rate:10.1f}"
        f"   {p50(batch_ttft):>11}   {len(batch_ttft)}"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch-concurrency", type=int, default=32)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--port", type=int, default=8013)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
