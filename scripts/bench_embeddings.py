"""Embeddings per second: through the gateway vs vLLM's ``AsyncLLM.encode`` in this process.

Both sides run the same model with the same engine settings (pooling runner, float32,
eager), and are loaded side by side; rounds alternate between them (gateway, direct,
gateway, ...), so a noisy neighbour on the machine slows both alike. Each round sends
``--requests`` requests one after another, each of ``batch`` texts (batch 1 and batch
32): the gateway gets one ``/v1/embeddings`` request with the batch as its ``input``;
engine-direct submits the batch's texts to ``encode`` at once, as one engine batch. Texts
are fresh in every round. The figure is the median over rounds of texts embedded per
second, and the ratio gateway / direct (target >= 0.95).

    .venv/bin/python scripts/bench_embeddings.py [--model FOLDER] [--rounds 5] [--requests 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import client_for, start_server, wait_ready  # noqa: E402

from openai_frontend.default_embed_model import ensure_default_embed_model  # noqa: E402

NAME = "embed-bench"
BATCHES = (1, 32)


def texts(batch: int, round_index: int, request: int) -> list[str]:
    return [
        f"round {round_index} request {request} item {i}: a short sentence about the weather "
        f"in city number {i * 7 + request}"
        for i in range(batch)
    ]


async def gateway_round(client: httpx.AsyncClient, batch: int, index: int, requests: int) -> float:
    started = time.perf_counter()
    for request in range(requests):
        body = {"model": NAME, "input": texts(batch, index, request)}
        response = await client.post("/v1/embeddings", json=body)
        response.raise_for_status()
    return batch * requests / (time.perf_counter() - started)


async def direct_round(llm, batch: int, index: int, requests: int) -> float:
    from vllm.pooling_params import PoolingParams

    async def one(text: str, request_id: str) -> list[float]:
        async for output in llm.encode(text, PoolingParams(task="embed"), request_id):
            final = output
        return final.outputs.data.tolist()

    started = time.perf_counter()
    for request in range(requests):
        batch_texts = texts(batch, index, request)
        tag = f"direct-{index}-{request}"
        await asyncio.gather(*(one(t, f"{tag}-{i}") for i, t in enumerate(batch_texts)))
    return batch * requests / (time.perf_counter() - started)


def direct_engine(model: Path):
    from engines.builds import apply_cpu_defaults, is_cpu_build

    if is_cpu_build():
        apply_cpu_defaults()
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(model=str(model), runner="pooling", dtype="float32", enforce_eager=True)
    return AsyncLLM.from_engine_args(args)


async def main(args: argparse.Namespace) -> None:
    model = args.model or ensure_default_embed_model()
    server = start_server(
        model, NAME, args.port, "--task", "embed", "--dtype", "float32", log_name="bench-embed.log"
    )
    llm = None
    try:
        async with client_for(args.port) as client:
            await wait_ready(client, server)
            llm = direct_engine(model)
            await gateway_round(client, 4, -1, 3)  # warm both up
            await direct_round(llm, 4, -1, 3)
            print(f"model {model.name}; {args.rounds} rounds of {args.requests} requests each")
            print("| batch | gateway emb/s | direct emb/s | gateway / direct |")
            print("|---:|---:|---:|---:|")
            for batch in BATCHES:
                ours, theirs = [], []
                for index in range(args.rounds):
                    ours.append(await gateway_round(client, batch, index, args.requests))
                    theirs.append(await direct_round(llm, batch, index, args.requests))
                gateway, direct = statistics.median(ours), statistics.median(theirs)
                print(f"| {batch} | {gateway:.1f} | {direct:.1f} | {gateway / direct:.3f} |")
    finally:
        if llm is not None:
            llm.shutdown()
        server.terminate()
        server.wait(timeout=60)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="default: all-MiniLM-L6-v2 (prepared)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--port", type=int, default=8791)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
