"""What the mixed-batch LoRA workaround costs base requests: its modes side by side.

One server per mode, all loaded at once (started one after another):

- ``nolora``: LoRA disabled (no adapter declared), the reference every ratio is against;
- ``pinned``, ``on``, ``off``: the same adapter declared, ``--base-via-zero-lora MODE``.

Each round runs ``openai-frontend bench`` against each server (order rotating between
rounds, so noise hits all) with base-model requests only: streaming chat, 128-token
prompts, 128 output tokens with ignore_eos, --waves x concurrency requests a level.
Prints output tok/s and server CPU seconds per 1k tokens per round, and per mode the
ratio to ``nolora`` of each round (paired) and its median.

    .venv/bin/python scripts/bench_zero_lora.py [--rounds 3] [--concurrency 8,32]
        [--modes nolora,pinned,on,off]
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

MODES = ("nolora", "pinned", "on", "off")
#: The mode every ratio is taken against: LoRA disabled.
REFERENCE = "nolora"


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


def mode_flags(mode: str) -> list[str]:
    """The server flags of one mode (``nolora``: no adapter, so LoRA is off)."""
    if mode == REFERENCE:
        return []
    return [f"--lora=pirate={ensure_adapter('pirate')}", f"--base-via-zero-lora={mode}"]


async def start_all(modes: list[str], args: argparse.Namespace) -> dict[str, object]:
    """One server per mode, each started once the one before is ready (2-core machines
    do not take several engine start-ups at once well)."""
    model = ensure_default_model()
    servers = {}
    try:
        for index, mode in enumerate(modes):
            servers[mode] = start_server(
                model,
                MODEL_NAME,
                args.port + index,
                *mode_flags(mode),
                log_name=f"bench-server-{mode}.log",
            )
            client = client_for(args.port + index)
            try:
                await wait_ready(client, servers[mode])
            finally:
                await client.aclose()
    except BaseException:
        stop_all(servers)
        raise
    return servers


def stop_all(servers: dict) -> None:
    for server in servers.values():
        server.terminate()
        server.wait(timeout=60)


def main(args: argparse.Namespace) -> None:
    modes = args.modes
    servers = asyncio.run(start_all(modes, args))
    results = {(mode, c): [] for mode in modes for c in args.concurrency}
    try:
        for round_no in range(args.rounds):
            shift = round_no % len(modes)
            order = modes[shift:] + modes[:shift]
            for concurrency in args.concurrency:
                for mode in order:
                    port = args.port + modes.index(mode)
                    pid = servers[mode].pid
                    tps, cpu = bench_once(port, pid, concurrency, args, seed=round_no)
                    results[(mode, concurrency)].append((tps, cpu))
                    print(
                        f"round {round_no} c={concurrency} {mode}: {tps:.1f} tok/s, "
                        f"{cpu:.1f} CPU s / 1k tokens",
                        flush=True,
                    )
    finally:
        stop_all(servers)
        # rounds done so far
        print_table(results, modes, args.concurrency, 0, "output tok/s")
        print_table(results, modes, args.concurrency, 1, "server CPU s per 1k tokens")


def print_table(results: dict, modes: list[str], levels: list[int], column: int, what: str) -> None:
    """Per mode and level: the median of one figure, the ratio to the reference mode in
    each round (paired), and the median ratio."""
    reference = modes[0]
    print(f"\n{what}; ratios to {reference}")
    print(f"| concurrency | mode | {what} (median) | ratio per round | median ratio |")
    print("|---|---|---|---|---|")
    for c in levels:
        base = [row[column] for row in results[(reference, c)]]
        for mode in modes:
            values = [row[column] for row in results[(mode, c)]]
            if not values:
                continue
            ratios = [a / b for a, b in zip(values, base, strict=False)]
            spread = ", ".join(f"{r:.2f}" for r in ratios)
            median_ratio = f"{statistics.median(ratios):.2f}x" if ratios else "-"
            print(f"| {c} | {mode} | {statistics.median(values):.1f} | {spread} | {median_ratio} |")


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
    parser.add_argument(
        "--modes",
        type=parse_modes,
        default=list(MODES),
        help=f"comma-separated, the first is the reference (default {','.join(MODES)})",
    )
    return parser.parse_args()


def parse_modes(text: str) -> list[str]:
    modes = [mode for mode in text.split(",") if mode]
    unknown = sorted(set(modes) - set(MODES))
    if unknown or len(set(modes)) != len(modes) or not modes:
        raise argparse.ArgumentTypeError(f"modes: distinct ones of {', '.join(MODES)}")
    return modes


if __name__ == "__main__":
    main(parse_args())
