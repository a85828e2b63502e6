"""Embeddings per second: through the gateway vs vLLM's ``AsyncLLM.encode`` in this process.

Every side runs the same model with the same engine settings (pooling runner, float32,
eager), and all are loaded side by side; rounds alternate between them, so a noisy
neighbour on the machine slows each alike. Each round sends ``--requests`` requests one
after another, each of ``batch`` texts (batch 1 and batch 32): the gateway gets one
``/v1/embeddings`` request with the batch as its ``input``; engine-direct submits the
batch's texts to ``encode`` at once, as one engine batch. With ``--vllm-serve``, vLLM's own
OpenAI server is a third side, to tell the cost of any HTTP server from ours. Texts are
fresh in every round. The figure is the median over rounds of texts embedded per second,
and the ratio gateway / direct (target >= 0.95). ``--encoding base64`` is what the
OpenAI SDK asks for.

    .venv/bin/python scripts/bench_embeddings.py [--model FOLDER] [--rounds 5] [--requests 20]
        [--vllm-serve] [--encoding float|base64]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchlib import client_for, start_server, wait_ready  # noqa: E402

from openai_frontend.default_embed_model import ensure_default_embed_model  # noqa: E402

NAME = "embed-bench"
BATCHES = (1, 32)


def texts(batch: int, round_index: int, request: int) -> list[str]:
    return [
        f"round {round_index} request {request} item {i}: a short sentence about the weather "
        f"in city number {i * 7 + request}"
        for i in range(batch)
    ]


async def http_round(
    client: httpx.AsyncClient, encoding: str, batch: int, index: int, requests: int
) -> float:
    started = time.perf_counter()
    for request in range(requests):
        body = {"model": NAME, "input": texts(batch, index, request), "encoding_format": encoding}
        response = await client.post("/v1/embeddings", json=body)
        response.raise_for_status()
        assert len(response.json()["data"]) == batch
    return batch * requests / (time.perf_counter() - started)


async def direct_round(llm, batch: int, index: int, requests: int) -> float:
    from vllm.pooling_params import PoolingParams

    async def one(text: str, request_id: str) -> list[float]:
        async for output in llm.encode(text, PoolingParams(task="embed"), request_id):
            final = output
        return final.outputs.data.tolist()

    started = time.perf_counter()
    for request in range(requests):
        batch_texts = texts(batch, index, request)
        tag = f"direct-{index}-{request}"
        await asyncio.gather(*(one(t, f"{tag}-{i}") for i, t in enumerate(batch_texts)))
    return batch * requests / (time.perf_counter() - started)


def direct_engine_args(model: Path):
    from engines.builds import apply_cpu_defaults, is_cpu_build

    if is_cpu_build():
        apply_cpu_defaults()  # into os.environ, which the servers inherit too
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(model=str(model), runner="pooling", dtype="float32", enforce_eager=True)


def direct_engine(model: Path):
    """vLLM's engine as the gateway starts a pooling engine (the same environment too)."""
    from vllm.v1.engine.async_llm import AsyncLLM

    from engines.builds import is_cpu_build, pooling_engine_env

    with pooling_engine_env(is_cpu_build()):
        return AsyncLLM.from_engine_args(direct_engine_args(model))


def vllm_serve(model: Path, port: int) -> subprocess.Popen:
    """vLLM's own server on the same engine settings (the module form of ``vllm serve``)."""
    log = (ROOT / "bench-embed-vllm.log").open("w")
    command = [
        *(sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)),
        *("--served-model-name", NAME, "--port", str(port), "--runner", "pooling"),
        *("--dtype", "float32", "--enforce-eager", "--disable-uvicorn-access-log"),
        *("--uvicorn-log-level", "warning"),
    ]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


async def vllm_ready(client: httpx.AsyncClient, process: subprocess.Popen) -> None:
    """vLLM's server has no /health/ready: /health and a listed model mean ready."""
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError("vllm serve exited; see bench-embed-vllm.log")
        try:
            if (await client.get("/v1/models")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError("vllm serve did not become ready")


async def main(args: argparse.Namespace) -> None:
    model = args.model or ensure_default_embed_model()
    direct_engine_args(model)  # the CPU environment, before any engine starts
    processes = {
        "gateway": start_server(
            model,
            NAME,
            args.port,
            "--task",
            "embed",
            "--dtype",
            "float32",
            log_name="bench-embed.log",
        )
    }
    if args.vllm_serve:
        processes["vllm serve"] = vllm_serve(model, args.port + 1)
    clients = {name: client_for(args.port + i) for i, name in enumerate(processes)}
    llm = None
    try:
        await wait_ready(clients["gateway"], processes["gateway"])
        if args.vllm_serve:
            await vllm_ready(clients["vllm serve"], processes["vllm serve"])
        llm = direct_engine(model)
        sides = {
            name: functools.partial(http_round, client, args.encoding)
            for name, client in clients.items()
        }
        sides["direct"] = functools.partial(direct_round, llm)
        for run in sides.values():
            await run(4, -1, 3)  # warm up
        print(
            f"model {model.name}; {args.rounds} rounds of {args.requests} requests each; "
            f"encoding {args.encoding}"
        )
        names = list(sides)
        print("| batch | " + " | ".join(f"{n} emb/s" for n in names) + " | gateway / direct |")
        print("|---:" * (len(names) + 2) + "|")
        for batch in BATCHES:
            rates: dict[str, list[float]] = {name: [] for name in names}
            for index in range(args.rounds):
                for name in names:
                    rates[name].append(await sides[name](batch, index, args.requests))
            medians = {name: statistics.median(values) for name, values in rates.items()}
            cells = " | ".join(f"{medians[n]:.1f}" for n in names)
            ratio = medians["gateway"] / medians["direct"]
            print(f"| {batch} | {cells} | {ratio:.3f} |", flush=True)
    finally:
        if llm is not None:
            llm.shutdown()
        for client in clients.values():
            await client.aclose()
        for process in processes.values():
            process.terminate()
            process.wait(timeout=60)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="default: all-MiniLM-L6-v2 (prepared)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--port", type=int, default=8791, help="and the next one for vLLM")
    parser.add_argument("--vllm-serve", action="store_true", help="add vLLM's own server")
    parser.add_argument("--encoding", choices=("float", "base64"), default="float")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
