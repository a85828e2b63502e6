"""Shared pieces of the benchmarks: start our server, wait for it, stream a chat request."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def start_server(
    model: Path, name: str, port: int, *extra: str, log_name: str = "bench-server.log"
) -> subprocess.Popen:
    """``openai-frontend serve`` in a child process, logging to ``log_name`` in the root."""
    log = (ROOT / log_name).open("w")
    command = [
        *(sys.executable, "-m", "openai_frontend", "serve", str(model)),
        *("--served-model-name", name, "--port", str(port), "--log-level", "warning"),
        *extra,
    ]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


async def wait_ready(
    client: httpx.AsyncClient, process: subprocess.Popen, path: str = "/health/ready"
) -> None:
    for _ in range(1200):
        if process.poll() is not None:
            raise RuntimeError("server exited; see bench-server.log")
        try:
            if (await client.get(path)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError("server did not become ready")


def client_for(port: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600, limits=limits)


async def stream_chat(
    client: httpx.AsyncClient, model: str, messages: list[dict], max_tokens: int
) -> tuple[float, int]:
    """(TTFT in seconds, completion tokens) of one streaming chat request."""
    ttft, tokens, _ = await stream_chat_reply(client, model, messages, max_tokens)
    return ttft, tokens


async def stream_chat_reply(
    client: httpx.AsyncClient, model: str, messages: list[dict], max_tokens: int
) -> tuple[float, int, str]:
    """(TTFT in seconds, completion tokens, reply text) of one streaming chat request.

    TTFT is the first chunk with content (the role-only chunk does not count); tokens
    come from the final usage chunk, with ignore_eos so every request is the same length.
    """
    payload = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    ttft, tokens, text = None, 0, []
    async with client.stream("POST", "/v1/chat/completions", json=payload) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                piece = choice["delta"].get("content")
                if piece:
                    ttft = ttft if ttft is not None else time.perf_counter() - start
                    text.append(piece)
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return ttft, tokens, "".join(text)


async def bounded(concurrency: int, jobs: list) -> list:
    """Run coroutine factories with at most ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job):
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


def summarize(results: list[tuple[float, int]], wall: float) -> tuple[float, float]:
    """(output tokens/s, TTFT p50 in ms)."""
    tokens = sum(t for _, t in results)
    return tokens / wall, statistics.median(ttft for ttft, _ in results) * 1000


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process and all its descendants (engine workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total
