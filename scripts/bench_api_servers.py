"""Frames/s and gateway CPU per frame with N API processes (``--api-server-count``).

Each N runs as the real command (``openai-frontend serve --engine synthetic
--api-server-count N``: NOT a model, fixed one-token deltas), and a lean aiohttp client
(scripts/bench_gateway_overhead.py's) streams chat at ``--concurrency``, 256 tokens a
stream. The CPU figure is the user + system time of every process of the server (the
supervisor and its API processes, read with psutil over each window) divided by the
frames the client received. The Ns are interleaved over ``--rounds``; medians.

    .venv/bin/python scripts/bench_api_servers.py --counts 1,2 --rounds 3 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gateway_overhead import lean_frames  # noqa: E402
from benchlib import tree_cpu_seconds  # noqa: E402

SERVED_BY = re.compile(r"openai_frontend_api_server_responses\{")


def start(count: int, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "openai_frontend", "serve", "--engine", "synthetic"]
    command += ["--api-server-count", str(count), "--port", str(port)]
    command += ["--log-level", "warning", "--response-store", "none"]
    return subprocess.Popen(command, stderr=subprocess.DEVNULL)


def up(base: str, count: int) -> bool:
    """Ready, and (several) every API process registered in /metrics."""
    try:
        if httpx.get(base + "/health/ready", timeout=2).status_code != 200:
            return False
        text = httpx.get(base + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return False
    return count == 1 or len(SERVED_BY.findall(text)) == count


def wait_up(base: str, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while not up(base, count):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the N={count} server did not start")
        time.sleep(0.5)


async def measure(args: argparse.Namespace) -> None:
    counts = [int(n) for n in args.counts.split(",")]
    servers = {n: (start(n, args.port + i), args.port + i) for i, n in enumerate(counts)}
    results: dict[int, list[tuple[float, float]]] = {n: [] for n in counts}
    try:
        for n, (process, port) in servers.items():
            wait_up(f"http://127.0.0.1:{port}", n, process)
            await lean_frames(f"http://127.0.0.1:{port}", "chat", 1.0, args.concurrency)
        for round_ in range(args.rounds):
            for n in counts if round_ % 2 == 0 else reversed(counts):
                process, port = servers[n]
                before, started = tree_cpu_seconds(process.pid), time.perf_counter()
                base = f"http://127.0.0.1:{port}"
                frames = await lean_frames(base, "chat", args.seconds, args.concurrency)
                elapsed = time.perf_counter() - started
                cpu = (tree_cpu_seconds(process.pid) - before) * 1e6 / frames
                results[n].append((frames / elapsed, cpu))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=60)
    print(f"| API processes | frames/s (median of {args.rounds}) | gateway CPU µs per frame |")
    print("|---:|---:|---:|")
    for n, rows in results.items():
        rate = statistics.median(r for r, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        print(f"| {n} | {rate:,.0f} | {cpu:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,2", help="API process counts to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=8310)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
