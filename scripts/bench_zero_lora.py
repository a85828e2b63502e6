"""What the zero-adapter workaround costs base requests: on vs off, side by side.

Two servers with the same adapter declared, one with ``--base-via-zero-lora on`` and
one with ``off``, both loaded at once. Each round runs ``openai-frontend bench``
against each (order alternating between rounds, so noise hits both) with base-model
requests only: streaming chat, 128-token prompts, 128 output tokens with ignore_eos,
2 x concurrency requests a level. Prints output tok/s per round, the on/off ratio per
round, and the median and spread of the ratios.

    .venv/bin/python scripts/bench_zero_lora.py [--rounds 3] [--concurrency 8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import client_for, start_server, wait_ready  # noqa: E402
from demo_adapters import ensure_adapter  # noqa: E402

from openai_frontend.default_model import MODEL_NAME, ensure_default_model  # noqa: E402

MODES = ("on", "off")


def bench_once(port: int, concurrency: int, args: argparse.Namespace, seed: int) -> float:
    """Output tok/s of one ``openai-frontend bench`` level against the base model."""
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "result.json"
        command = [
            *(sys.executable, "-m", "openai_frontend", "bench"),
            *("--url", f"http://127.0.0.1:{port}", "--model", MODEL_NAME),
            *("--concurrency", str(concurrency), "--num-requests", str(2 * concurrency)),
            *("--input-len", "128", "--output-len", str(args.max_tokens)),
            *("--seed", str(seed), "--export", str(export)),
        ]
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
        summary = json.loads(export.read_text())["runs"][0]["summary"]
    if summary["failed"]:
        raise RuntimeError(f"{summary['failed']} requests failed: {summary['errors']}")
    return summary["output_throughput"]


async def start_both(args: argparse.Namespace) -> dict[str, object]:
    model = ensure_default_model()
    lora = f"--lora=pirate={ensure_adapter('pirate')}"
    servers = {
        mode: start_server(
            model,
            MODEL_NAME,
            args.port + index,
            lora,
            f"--base-via-zero-lora={mode}",
            log_name=f"bench-server-{mode}.log",
        )
        for index, mode in enumerate(MODES)
    }
    for index, mode in enumerate(MODES):
        client = client_for(args.port + index)
        try:
            await wait_ready(client, servers[mode])
        finally:
            await client.aclose()
    return servers


def main(args: argparse.Namespace) -> None:
    servers = asyncio.run(start_both(args))
    results = {(mode, c): [] for mode in MODES for c in args.concurrency}
    try:
        for round_no in range(args.rounds):
            order = MODES if round_no % 2 == 0 else MODES[::-1]
            for concurrency in args.concurrency:
                for mode in order:
                    port = args.port + MODES.index(mode)
                    tps = bench_once(port, concurrency, args, seed=round_no)
                    results[(mode, concurrency)].append(tps)
                    print(f"round {round_no} c={concurrency} {mode}: {tps:.0f} tok/s", flush=True)
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(timeout=60)
    print("\n| concurrency | zero adapter on tok/s | off tok/s | on/off per round | median |")
    print("|---|---|---|---|---|")
    for c in args.concurrency:
        on, off = results[("on", c)], results[("off", c)]
        ratios = [a / b for a, b in zip(on, off, strict=True)]
        print(
            f"| {c} | {statistics.median(on):.0f} | {statistics.median(off):.0f} | "
            f"{', '.join(f'{r:.2f}' for r in ratios)} | {statistics.median(ratios):.2f}x |"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[8, 32]
    )
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--port", type=int, default=8134)
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_args())
