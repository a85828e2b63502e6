"""Multi-LoRA throughput: base only, one adapter, three adapters mixed, at concurrency 8.

One server serves the base model and three demo adapters (scripts/demo_adapters.py).
Each round runs the three loads back to back (interleaved over rounds, so noise hits
all of them); streaming chat, 128 output tokens with ignore_eos. Prints medians of
output tokens/s and the ratios to base only.

    .venv/bin/python scripts/bench_lora.py [--rounds 3] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import bounded, client_for, start_server, stream_chat, summarize, wait_ready  # noqa: E402
from demo_adapters import PHRASES, ensure_adapter  # noqa: E402

from openai_frontend.default_model import MODEL_NAME, ensure_default_model  # noqa: E402

ADAPTERS = sorted(PHRASES)


def loads() -> dict[str, list[str]]:
    return {
        "base only": [MODEL_NAME],
        "one adapter": [ADAPTERS[0]],
        "three adapters mixed": ADAPTERS,
    }


async def main(args: argparse.Namespace) -> None:
    model = ensure_default_model()
    flags = [f"--lora={name}={ensure_adapter(name)}" for name in ADAPTERS]
    server = start_server(model, MODEL_NAME, args.port, *flags)
    client = client_for(args.port)
    results: dict[str, list[float]] = {name: [] for name in loads()}
    try:
        await wait_ready(client, server)
        for round_no in range(args.rounds):
            for name, models in loads().items():
                count = args.concurrency * 2
                jobs = [
                    lambda i=i, models=models, r=round_no: stream_chat(
                        client,
                        models[i % len(models)],
                        [{"role": "user", "content": f"[{r}-{i}] Write a long story."}],
                        args.max_tokens,
                    )
                    for i in range(count)
                ]
                start = time.perf_counter()
                done = await bounded(args.concurrency, jobs)
                tps, _ = summarize(done, time.perf_counter() - start)
                results[name].append(tps)
                print(f"round {round_no} {name}: {tps:.0f} tok/s", flush=True)
    finally:
        await client.aclose()
        server.terminate()
        server.wait(timeout=60)
    base = statistics.median(results["base only"])
    print(f"\n| load (concurrency {args.concurrency}) | output tok/s | vs base only |")
    print("|---|---|---|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} | {median / base:.2f}x |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--port", type=int, default=8124)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
