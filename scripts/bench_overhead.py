"""Gateway overhead: engine-direct AsyncLLM against the same load through our HTTP server.

In one run, for each concurrency, the identical streaming load (the same rendered chat
prompts, 128 output tokens with ignore_eos) goes to (A) vLLM's AsyncLLM in this process
and (B) `openai-frontend serve` over HTTP, in interleaved rounds (A, B, A, B, ...) so
machine noise hits both. Reports medians over rounds of output tokens/s and TTFT p50,
and the ratios B/A.

    .venv/bin/python scripts/bench_overhead.py [--concurrency 1,8,32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import (  # noqa: E402
    bounded,
    client_for,
    start_server,
    stream_chat,
    summarize,
    tree_cpu_seconds,
    wait_ready,
)

from engines.builds import apply_cpu_defaults, is_cpu_build  # noqa: E402
from openai_frontend.default_model import MODEL_NAME, default_dtype, ensure_default_model  # noqa: E402


def messages_for(round_no: int, i: int) -> list[dict]:
    """Distinct prompts per request and round, so no side gets prefix-cache hits."""
    topic = ["the sea", "mountains", "a city at night", "an old library", "the desert"][i % 5]
    return [
        {"role": "user", "content": f"[{round_no}-{i}] Write a long, detailed essay about {topic}."}
    ]


async def run_direct(
    llm, prompts: list[list[int]], concurrency: int, max_tokens: int
) -> list[tuple[float, int]]:
    from vllm.sampling_params import RequestOutputKind, SamplingParams

    params = SamplingParams(
        max_tokens=max_tokens, temperature=0, ignore_eos=True, output_kind=RequestOutputKind.DELTA
    )
    gate = asyncio.Semaphore(concurrency)

    async def one(ids: list[int]) -> tuple[float, int]:
        async with gate:
            start = time.perf_counter()
            ttft, tokens = None, 0
            async for out in llm.generate(
                {"prompt_token_ids": ids}, params, request_id=uuid.uuid4().hex
            ):
                seq = out.outputs[0]
                if ttft is None and seq.text:
                    ttft = time.perf_counter() - start
                tokens += len(seq.token_ids)
            return ttft, tokens

    return await asyncio.gather(*(one(ids) for ids in prompts))


async def run_http(
    client: httpx.AsyncClient, batch: list[list[dict]], concurrency: int, max_tokens: int
):
    jobs = [lambda m=m: stream_chat(client, MODEL_NAME, m, max_tokens) for m in batch]
    return await bounded(concurrency, jobs)


class CpuMeter:
    """CPU seconds spent since the last lap by this process tree (the direct engine and
    the HTTP client) and by the server's tree (API process and its engine), so a round
    shows where the machine's cores went on each side."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.last = self._now()

    def _now(self) -> tuple[float, float]:
        server = tree_cpu_seconds(self.server_pid)
        # The server is this process's child: its tree is inside ours, so take it out.
        return tree_cpu_seconds(os.getpid()) - server, server

    def lap(self) -> tuple[float, float]:
        now = self._now()
        spent = (now[0] - self.last[0], now[1] - self.last[1])
        self.last = now
        return spent


def print_table(rows: list[tuple[int, float, float, float, float]]) -> None:
    print()
    print("| concurrency | direct tok/s | gateway tok/s | ratio ", end="")
    print("| direct TTFT p50 ms | gateway TTFT p50 ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for c, d_tps, g_tps, d_ttft, g_ttft in rows:
        print(f"| {c} | {d_tps:.0f} | {g_tps:.0f} | {g_tps / d_tps:.2f}x ", end="")
        print(f"| {d_ttft:.0f} | {g_ttft:.0f} | {g_ttft / d_ttft:.2f}x |")


async def main(args: argparse.Namespace) -> None:
    if is_cpu_build():
        apply_cpu_defaults()
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    model = ensure_default_model()
    dtype = default_dtype(model)  # both sides compute in the dtype the server defaults to
    server = start_server(model, MODEL_NAME, args.port)
    client = client_for(args.port)
    llm = AsyncLLM.from_engine_args(
        AsyncEngineArgs(
            model=str(model), enforce_eager=True, enable_prefix_caching=True, dtype=dtype
        )
    )
    try:
        await wait_ready(client, server)
        rows = []
        for concurrency in args.concurrency:
            count = max(4, concurrency * 2)
            direct, gateway = [], []
            for round_no in range(args.rounds):
                batch = [messages_for(round_no * 1000 + concurrency, i) for i in range(count)]
                prompts = [
                    (
                        await client.post("/tokenize", json={"model": MODEL_NAME, "messages": m})
                    ).json()["tokens"]
                    for m in batch
                ]
                cpu = CpuMeter(server.pid)
                start = time.perf_counter()
                results = await run_direct(llm, prompts, concurrency, args.max_tokens)
                direct.append(summarize(results, time.perf_counter() - start))
                direct_cpu = cpu.lap()
                # The same prompts: each side has its own engine, so no cache is shared.
                start = time.perf_counter()
                results = await run_http(client, batch, concurrency, args.max_tokens)
                gateway.append(summarize(results, time.perf_counter() - start))
                gateway_cpu = cpu.lap()
                (d_tps, d_ttft), (g_tps, g_ttft) = direct[-1], gateway[-1]
                print(
                    f"c={concurrency} round {round_no}: direct {d_tps:.0f} tok/s {d_ttft:.0f} ms"
                    f" (cpu s: bench {direct_cpu[0]:.1f}, server {direct_cpu[1]:.1f}),"
                    f" gateway {g_tps:.0f} tok/s {g_ttft:.0f} ms"
                    f" (cpu s: bench {gateway_cpu[0]:.1f}, server {gateway_cpu[1]:.1f})",
                    flush=True,
                )
            d_tps = statistics.median(r[0] for r in direct)
            d_ttft = statistics.median(r[1] for r in direct)
            g_tps = statistics.median(r[0] for r in gateway)
            g_ttft = statistics.median(r[1] for r in gateway)
            rows.append((concurrency, d_tps, g_tps, d_ttft, g_ttft))
        print_table(rows)
    finally:
        await client.aclose()
        llm.shutdown()
        server.terminate()
        server.wait(timeout=60)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--port", type=int, default=8123)
    return parser.parse_args()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    asyncio.run(main(parse_args()))
