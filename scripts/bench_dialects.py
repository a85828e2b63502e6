"""The three chat-shaped APIs side by side: Chat Completions, Responses, Messages.

Every dialect is a translation over one pipeline, so each should cost what chat costs.
One ``openai-frontend serve`` of the default model; the identical
``openai-frontend bench`` load (streaming, ``--output-len`` tokens with ignore_eos, greedy)
goes to each API in turn, interleaved by round (A, B, C, C, B, A, ...) so machine noise
hits all three, with the engine's prefix cache off (the APIs share the round's prompts).
Prints medians over rounds, each API's ratio to chat and the median of per-round
(paired) ratios; the target is within 3% (ratio >= 0.97 for throughput). On a machine
whose speed drifts between rounds those swing by more than 3%, so each API's cost is also
measured where drift cannot blur it: the server process's CPU milliseconds per output
token (the engine core is another process, and does the same work for every API), and
from it a floor on each API's throughput relative to chat's (see ``print_cpu``). ``--dtype
bfloat16`` makes the run faster on a CPU with AMX (the ratios are what counts, and every
API gets the same engine).

    .venv/bin/python scripts/bench_dialects.py [--concurrency 8,32] [--rounds 3] [--dtype D]
        [--output-len 128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from compare_vllm_serve import interleave, parse_args, print_table, start, wait_ready  # noqa: E402

from engines.builds import apply_cpu_defaults, is_cpu_build  # noqa: E402
from openai_frontend.bench.client import RequestShape  # noqa: E402
from openai_frontend.default_model import MODEL_NAME, ensure_default_model  # noqa: E402

APIS = ("chat", "responses", "messages")


def server_cpu_seconds(pid: int):
    """The server process's CPU time so far (user + system), without its engine core: the
    frontend's work, plus vLLM's own client side (detokenizing), alike for every API."""
    server = psutil.Process(pid)

    def seconds() -> float:
        times = server.cpu_times()
        return times.user + times.system

    return seconds


async def main(args: argparse.Namespace) -> None:
    model = ensure_default_model()
    process = start(
        "dialects",
        [
            *(sys.executable, "-m", "openai_frontend", "serve", str(model)),
            *("--served-model-name", MODEL_NAME, "--port", str(args.port)),
            *("--log-level", "warning", "--response-store", "none"),
            *(("--dtype", args.dtype) if args.dtype else ()),
            # Every API gets the same prompts in a round: with a prefix cache, whichever
            # goes first would pay the prefill for the others.
            *("--engine-args", json.dumps({"enable_prefix_caching": False})),
        ],
    )
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    url = f"http://127.0.0.1:{args.port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
            await wait_ready(client, process, "/health/ready")
            sides = {
                api: (client, RequestShape(MODEL_NAME, api, True, True, {"temperature": 0}))
                for api in APIS
            }
            rows = await interleave(model, sides, args, server_cpu_seconds(process.pid))
        print_table(rows, args, APIS, what="chat-shaped APIs")
    finally:
        process.terminate()
        process.wait(timeout=60)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if is_cpu_build():
        apply_cpu_defaults()
    args = parse_args(__doc__, port=8150, dtype=True)
    asyncio.run(main(args))
