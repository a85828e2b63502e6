"""What the zero-adapter workaround costs base requests: on vs off, side by side.

Two servers with the same adapter declared, one with ``--base-via-zero-lora on`` and
one with ``off``, both loaded at once. Each round runs ``openai-frontend bench``
against each (order alternating between rounds, so noise hits both) with base-model
requests only: streaming chat, 128-token prompts, 128 output tokens with ignore_eos,
--waves x concurrency requests a level. Prints output tok/s per round, the on/off ratio per
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

from benchlib import client_for, start_server, tree_cpu_seconds, wait_ready  # noqa: E402
from demo_adapters import ensure_adapter  # noqa: E402

from openai_frontend.default_model import MODEL_NAME, ensure_default_model  # noqa: E402

MODES = ("on", "off")


def bench_once(
    port: int, server_pid: int, concurrency: int, args: argparse.Namespace, seed: int
) -> tuple[float, float]:
    """(output tok/s, server CPU seconds per 1000 output tokens) of one
    ``openai-frontend bench`` level against the base model.

    CPU seconds (server and engine processes) are the steadier figure on a shared
    machine: other people's load stretches wall time much more than it changes them.
    """
    cpu_before = tree_cpu_seconds(server_pid)
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "result.json"
        command = [
            *(sys.executable, "-m", "openai_frontend", "bench"),
            *("--url", f"http://127.0.0.1:{port}", "--model", MODEL_NAME),
            *("--concurrency", str(concurrency), "--num-requests", str(args.waves * concurrency)),
            *("--input-len", "128", "--output-len", str(args.max_tokens)),
            *("--seed", str(seed), "--export", str(export)),
        ]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"bench failed:\n{done.stderr[-2000:]}")
        summary = json.loads(export.read_text())["runs"][0]["summary"]
    cpu = tree_cpu_seconds(server_pid) - cpu_before
    if summary["failed"]:
        raise RuntimeError(f"{summary['failed']} requests failed: {summary['errors']}")
    # the warm-up request is in the CPU time too, so count its tokens
    tokens = summary["output_tokens"] + args.max_tokens
    return summary["output_throughput"], 1000 * cpu / tokens


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
                    pid = servers[mode].pid
                    tps, cpu = bench_once(port, pid, concurrency, args, seed=round_no)
                    results[(mode, concurrency)].append((tps, cpu))
                    print(
                        f"round {round_no} c={concurrency} {mode}: {tps:.1f} tok/s, "
                        f"{cpu:.1f} CPU s / 1k tokens",
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(timeout=60)
        print_table(results, args.concurrency, 0, "output tok/s")  # rounds done so far
        print_table(results, args.concurrency, 1, "server CPU s per 1k tokens")


def print_table(results: dict, levels: list[int], column: int, what: str) -> None:
    """Medians of on and off, and the on/off ratio of each round (paired), for one figure."""
    print(f"\n| concurrency | {what}, zero adapter on | off | on/off per round | median |")
    print("|---|---|---|---|---|")
    for c in levels:
        on = [row[column] for row in results[("on", c)]]
        off = [row[column] for row in results[("off", c)]]
        ratios = [a / b for a, b in zip(on, off, strict=False)]
        if not ratios:
            continue
        print(
            f"| {c} | {statistics.median(on):.1f} | {statistics.median(off):.1f} | "
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
    parser.add_argument(
        "--waves", type=int, default=2, help="requests a level = waves x concurrency"
    )
    parser.add_argument("--port", type=int, default=8134)
    return parser.parse_args()


if __name__ == "__main__":
    main(parse_args())
