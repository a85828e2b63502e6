"""Prefix-affinity routing against least-outstanding, side by side in one run.

Two upstreams (vLLM's own OpenAI server on the CPU build, for its prefix-cache counters)
and two gateways of ours in front of both, ``--engine remote --routing affinity`` and
``--routing least-outstanding``. Each policy gets the same multi-turn workload with its
own conversations (so neither reuses the other's cache): CONVERSATIONS chats of TURNS
turns, each turn resending the whole history. Every chat opens with a document of its own
(~300 tokens) and asks short questions about it.

Conversations behave like people, not like a closed loop: each starts at a random moment,
thinks for a random pause before each turn (longer than a turn takes), and asks for a
random reply length (seeded, so both policies get exactly the same workload). In a closed
loop (every chat sends its next turn as soon as the last one ends) least-outstanding
sends a chat's next turn back to the upstream that just freed its slot, which is affinity
by accident: measured so, least-outstanding kept a 63% hit rate against affinity's 71%.
Real traffic does not line up like that.

Where both upstreams' caches hold every conversation, least-outstanding loses little: a
conversation's document is cached on each upstream after its first visit there. What
affinity saves is capacity (each upstream holds only its share of the conversations), so
``--kv-tokens`` sizes each upstream's KV cache below the whole working set, as a busy
server's is.

Cached tokens are the upstreams' ``vllm:prefix_cache_hits_total`` (tokens served from
the prefix cache) summed over both, read from their /metrics before and after each
phase; TTFT is the first content chunk; throughput is completion tokens per second of wall
time (both policies pause alike) and, with the pauses out, the mean time a turn takes.
The phases alternate (LO, affinity, LO, affinity) to even out warm-up.

    flock /tmp/engine.lock .venv/bin/python scripts/bench_routing.py [--conversations 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchlib import client_for, start_server, stream_chat_reply, wait_ready  # noqa: E402

from openai_frontend.default_model import MODEL_NAME, ensure_default_model  # noqa: E402

POLICIES = ("least-outstanding", "affinity")
TOPICS = ("rivers", "bridges", "volcanoes", "libraries", "orchards", "harbours", "comets")
QUESTIONS = (
    "Summarise the document in one sentence.",
    "Which place does it mention first?",
    "What number appears in it?",
    "Give it a title.",
    "Who would enjoy reading it?",
    "Name one word it repeats.",
)


def document(tag: str, index: int) -> str:
    """A ~300-token text that no other conversation shares."""
    topic = TOPICS[index % len(TOPICS)]
    lines = [
        f"Document {tag}-{index}: notes on {topic}, entry {n}, kept by archivist "
        f"{index * 7 + n} in the year {1800 + index * 13 + n}."
        for n in range(12)
    ]
    return "Read this document.\n" + "\n".join(lines)


def kv_bytes_per_token(model: Path, dtype: str) -> int:
    """K and V of every layer for one token, from the checkpoint's config."""
    config = json.loads((model / "config.json").read_text())
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    if dtype == "auto":  # vLLM's "auto" is the checkpoint's own dtype
        dtype = config.get("torch_dtype") or config.get("dtype") or "float32"
    width = {"bfloat16": 2, "float16": 2, "half": 2}.get(dtype, 4)
    return (
        2
        * config["num_hidden_layers"]
        * config.get("num_key_value_heads", heads)
        * head_dim
        * width
    )


def upstream_command(model: Path, port: int, args) -> list[str]:
    command = [
        *(sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)),
        *("--served-model-name", MODEL_NAME, "--port", str(port), "--enforce-eager"),
        *("--dtype", args.dtype, "--disable-uvicorn-access-log"),
    ]
    if args.kv_tokens:
        size = args.kv_tokens * kv_bytes_per_token(model, args.dtype)
        command += ["--kv-cache-memory-bytes", str(size)]
        # vLLM refuses a cache that cannot hold one request of the full context.
        command += ["--max-model-len", str(min(args.kv_tokens, 4096))]
    return command


def start_upstream(model: Path, port: int, index: int, args):
    """Upstream ``index`` on its own share of the cores: two engines whose OpenMP threads
    both spin on every core starve each other (seen: 4 tok/s for 7 running requests),
    and two upstreams stand for two machines."""
    import os
    import subprocess

    from engines.builds import apply_cpu_defaults, is_cpu_build

    cpu_build = is_cpu_build()
    if cpu_build:
        apply_cpu_defaults()
    env = os.environ.copy()
    if cpu_build:
        cores = sorted(os.sched_getaffinity(0))
        share = cores[index::2] or cores
        env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, share))
        if args.kv_tokens:  # vLLM's CPU platform lets this variable override the flag
            env.pop("VLLM_CPU_KVCACHE_SPACE", None)
    log = (ROOT / f"bench-upstream-{index}.log").open("w")
    return subprocess.Popen(
        upstream_command(model, port, args),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )


async def prefix_cache(upstreams: list[httpx.AsyncClient]) -> tuple[float, float]:
    """(prompt tokens served from the upstreams' prefix caches, prompt tokens looked up
    there), summed over the upstreams, so far."""
    hits = queries = 0.0
    for upstream in upstreams:
        for line in (await upstream.get("/metrics")).text.splitlines():
            if line.startswith("vllm:prefix_cache_hits_total"):
                hits += float(line.rsplit(" ", 1)[1])
            elif line.startswith("vllm:prefix_cache_queries_total"):
                queries += float(line.rsplit(" ", 1)[1])
    return hits, queries


async def conversation(client, tag: str, index: int, round_: int, args) -> list:
    """Each turn's (TTFT s, completion tokens, seconds the turn took)."""
    rng = random.Random(f"{round_}-{index}")  # the same chat for either policy
    messages: list[dict] = []
    results = []
    for number in range(args.turns):
        await asyncio.sleep(rng.uniform(0, args.think if number else args.stagger))
        question = QUESTIONS[number % len(QUESTIONS)]
        opening = document(tag, index) + "\n\n" if number == 0 else ""
        messages.append({"role": "user", "content": opening + question})
        max_tokens = rng.randint(args.min_tokens, args.max_tokens)
        started = time.perf_counter()
        ttft, tokens, reply = await stream_chat_reply(client, MODEL_NAME, messages, max_tokens)
        messages.append({"role": "assistant", "content": reply})
        results.append((ttft, tokens, time.perf_counter() - started))
    return results


async def phase(gateway, upstreams, policy: str, round_: int, args) -> dict:
    tag = f"{policy}-{round_}"
    hits, queries = await prefix_cache(upstreams)
    start = time.perf_counter()
    chats = await asyncio.gather(
        *(conversation(gateway, tag, i, round_, args) for i in range(args.conversations))
    )
    wall = time.perf_counter() - start
    results = [result for chat in chats for result in chat]
    hits_after, queries_after = await prefix_cache(upstreams)
    return {
        "policy": policy,
        "cached_tokens": hits_after - hits,
        "hit_rate": (hits_after - hits) / max(queries_after - queries, 1),
        "ttft_p50_ms": statistics.median(t for t, _, _ in results) * 1000,
        "tokens_per_s": sum(n for _, n, _ in results) / wall,
        "turn_s_mean": statistics.fmean(s for _, _, s in results),
        "wall_s": wall,
        "requests": len(results),
    }


async def run(args) -> list[dict]:
    model = ensure_default_model()
    ports = [args.base_port + i for i in range(4)]
    upstreams = [start_upstream(model, ports[i], i, args) for i in range(2)]
    gateways = []
    up_clients = [client_for(port) for port in ports[:2]]
    gw_clients = [client_for(port) for port in ports[2:]]
    try:
        for client, process in zip(up_clients, upstreams, strict=True):
            await wait_ready(client, process, "/health")
        for i, policy in enumerate(POLICIES):
            gateways.append(
                start_server(
                    model,
                    MODEL_NAME,
                    ports[2 + i],
                    *("--engine", "remote", "--routing", policy),
                    *(f"--upstream=http://127.0.0.1:{port}" for port in ports[:2]),
                    log_name=f"bench-gateway-{policy}.log",
                )
            )
        for client, process in zip(gw_clients, gateways, strict=True):
            await wait_ready(client, process)
        rows = []
        for round_ in range(args.rounds):
            for i, policy in enumerate(POLICIES):
                rows.append(await phase(gw_clients[i], up_clients, policy, round_, args))
                print(json.dumps(rows[-1]), flush=True)
        return rows
    finally:
        for process in [*gateways, *upstreams]:
            process.terminate()
        for process in [*gateways, *upstreams]:
            process.wait(timeout=60)


def report(rows: list[dict]) -> None:
    print(
        "\n| policy | cached tokens (both upstreams) | hit rate | TTFT p50 ms | tokens/s "
        "| mean turn s |"
    )
    print("|---|---|---|---|---|---|")
    for policy in POLICIES:
        mine = [row for row in rows if row["policy"] == policy]
        cached = sum(row["cached_tokens"] for row in mine) / len(mine)
        ttft = statistics.median(row["ttft_p50_ms"] for row in mine)
        rate = sum(row["tokens_per_s"] for row in mine) / len(mine)
        hit_rate = sum(row["hit_rate"] for row in mine) / len(mine)
        turn = sum(row["turn_s_mean"] for row in mine) / len(mine)
        print(
            f"| {policy} | {cached:.0f} | {hit_rate:.0%} | {ttft:.0f} | {rate:.1f} | {turn:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=16)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--min-tokens", type=int, default=8, help="shortest reply asked for")
    parser.add_argument("--max-tokens", type=int, default=32, help="longest reply asked for")
    parser.add_argument("--think", type=float, default=12.0, help="longest pause between turns, s")
    parser.add_argument("--stagger", type=float, default=10.0, help="latest start of a chat, s")
    parser.add_argument(
        "--dtype", default="auto", help="the upstreams' dtype (bfloat16: faster on AMX CPUs)"
    )
    parser.add_argument(
        "--kv-tokens", type=int, help="each upstream's KV cache, in tokens (default: vLLM's)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="phases per policy, alternating")
    parser.add_argument("--base-port", type=int, default=8310)
    args = parser.parse_args()
    report(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
