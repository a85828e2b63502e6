"""The frontend's own cost per request and per streamed frame, with no model behind it.

The engine here is ``SyntheticTokenEngine``: an explicitly synthetic token source that
exists only in this script. It yields one-token deltas as fast as the event loop lets
it, so every microsecond measured is the gateway's (routing, validation, templating,
tokenizing, SSE framing, HTTP) plus the client's. The gateway runs in its own process;
the client (httpx) in this one. Reports non-streaming requests/s, streaming frames/s at
concurrency 64, and microseconds per frame (1e6 / frames/s; client and gateway share
the machine's two cores, so this is an upper bound on the gateway's own cost).

``--api chat,responses,messages`` streams the same load through each API in turn
(interleaved over ``--rounds``), to compare the dialects' per-frame cost; the first is
the reference for the ratios.

``--embeddings`` serves the synthetic engine as an embedding model instead (constant
384-float vectors, MiniLM's size) and reports ``/v1/embeddings`` requests/s at batch 1
and 32: the gateway's own cost per embeddings request.

``--reply reasoning-tools`` makes the engine stream, instead of " tok", the pieces of a
reply with a ``<think>`` section and ``<tool_call>`` blocks (scripts/bench_output_parser.py
builds it), so the per-frame cost can be compared with and without a parser stage.

``--cpu`` measures right instead: the gateway process's own CPU time (user + system,
read with psutil over each window) per streamed frame, with a lean aiohttp client, at
concurrency 32 and 256 tokens per stream, for each ``--api`` and for a floor: a bare
ASGI app under uvicorn that relays 256 pre-built SSE frames per request (no FastAPI, no
engine, no JSON). The APIs and the floor are interleaved over ``--rounds``; medians.

    .venv/bin/python scripts/bench_gateway_overhead.py [--seconds 10] [--reply reasoning-tools]
        [--api chat,responses,messages] [--rounds 3]
    .venv/bin/python scripts/bench_gateway_overhead.py --cpu --rounds 3 --seconds 5 \
        --api chat,completions,responses,messages
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.synthetic import SyntheticTokenEngine  # noqa: E402
from openai_frontend.app import create_app  # noqa: E402
from openai_frontend.bench.dialects import DIALECTS  # noqa: E402
from openai_frontend.config import ServerConfig  # noqa: E402
from openai_frontend.default_model import MODEL_NAME, ensure_default_model  # noqa: E402


def reply_pieces(reply: str) -> tuple[str, ...]:
    if reply == "tok":
        return (" tok",)
    from bench_output_parser import deltas_of, synthetic_reply

    return tuple(delta.text for delta in deltas_of(synthetic_reply()[0]))


def serve(
    port: int,
    reply: str,
    parsers: bool,
    embeddings: bool,
    stock: bool = False,
    coalesce_ms: float = 0.0,
) -> None:
    """The gateway with the synthetic engine (run in its own process: no shared GIL);
    with ``parsers``, every reply goes through the qwen3 reasoning and hermes tool-call
    parsers, as a request with tools to a reasoning model would; with ``embeddings`` it
    serves the engine as an embedding model."""
    model = ensure_default_model()
    chosen = {"reasoning_parser": "qwen3", "tool_call_parser": "hermes"} if parsers else {}
    if embeddings:
        chosen["task"] = "embed"
    config = ServerConfig(
        model_path=model,
        served_model_name=MODEL_NAME,
        port=port,
        stream_coalesce_ms=coalesce_ms,
        **chosen,
    )
    if stock:  # the "before": sse-starlette's response class as shipped
        import sse_starlette

        from openai_frontend import streaming

        class StockEventSourceResponse(sse_starlette.EventSourceResponse):
            """As shipped, sending the frames and the dialect's last frame through its
            own loop; takes (and ignores) the drain and coalescing settings."""

            def __init__(self, frames, *, ending, drain_timeout, coalesce_s, **kwargs) -> None:
                super().__init__(_then(frames, ending.last), **kwargs)

        async def _then(frames, last):
            async for chunk in frames:
                yield chunk
            if last is not None:
                yield last

        streaming.LeanEventSourceResponse = StockEventSourceResponse
    app = create_app(config, SyntheticTokenEngine(model, MODEL_NAME, pieces=reply_pieces(reply)))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


FLOOR_FRAME = (
    b'data: {"id":"chatcmpl-0","object":"chat.completion.chunk","created":0,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":" tok"},"logprobs":null,"finish_reason":null}]}\n\n'
)


async def floor_app(scope: dict, receive, send) -> None:  # noqa: ANN001
    """The floor: a bare ASGI SSE relay of 256 pre-built frames, one send per frame."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for _ in range(256):
        await asyncio.sleep(0)  # one event-loop turn per token, as the synthetic engine's
        await send({"type": "http.response.body", "body": FLOOR_FRAME, "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


def serve_floor(port: int) -> None:
    uvicorn.run(floor_app, host="127.0.0.1", port=port, log_level="warning")


async def lean_frames(base: str, api: str, seconds: float, concurrency: int) -> int:
    """Frames read by a lean aiohttp client in ``seconds`` (``api`` "floor": the relay)."""
    import aiohttp

    dialect = DIALECTS["chat" if api == "floor" else api]
    payload = dialect.body(MODEL_NAME, PROMPT, 256, stream=True)
    frames = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal frames
        while time.perf_counter() < deadline:
            async with session.post(base + dialect.path, json=payload) as response:
                response.raise_for_status()
                count = 0
                async for line in response.content:
                    if line.startswith(b"data: "):
                        count += 1
                frames += count

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return frames


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def cpu_per_frame(args: argparse.Namespace) -> None:
    """Gateway CPU µs per frame per API and the floor's, interleaved over rounds."""
    floor_port = args.port + 1
    gateway = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(args.port), "--reply", args.reply]
    )
    floor = subprocess.Popen([sys.executable, __file__, "--serve-floor", str(floor_port)])
    targets = {api: (gateway, args.port) for api in args.api.split(",")}
    targets["floor"] = (floor, floor_port)
    stock = None
    if args.compare_stock:  # chat again, through a gateway with stock sse-starlette
        stock_port = args.port + 2
        command = [sys.executable, __file__, "--serve", str(stock_port), "--stock-sse"]
        stock = subprocess.Popen([*command, "--reply", args.reply])
        targets["chat, stock sse-starlette"] = (stock, stock_port)
    coalesced = None
    if args.coalesce_ms:  # the same APIs through a gateway with --stream-coalesce-ms
        coalesced_port = args.port + 4
        command = [sys.executable, __file__, "--serve", str(coalesced_port)]
        command += ["--reply", args.reply, "--coalesce-ms", str(args.coalesce_ms)]
        coalesced = subprocess.Popen(command)
        for api in args.api.split(","):
            targets[f"{api}, --stream-coalesce-ms {args.coalesce_ms:g}"] = (
                coalesced,
                coalesced_port,
            )
    baselines = []
    for offset, tree in enumerate(args.baseline):  # chat through an older checkout, same engine
        baseline_port = args.port + 10 + offset
        script = tree / "scripts" / "bench_gateway_overhead.py"
        command = [sys.executable, str(script), "--serve", str(baseline_port)]
        baselines.append(subprocess.Popen(command, cwd=tree))
        targets[f"chat, {tree.name} checkout"] = (baselines[-1], baseline_port)
    results: dict[str, list[float]] = {name: [] for name in targets}
    try:
        for port in {port for _, port in targets.values()} - {floor_port}:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                await wait_up(client)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{floor_port}") as client:
            for _ in range(200):
                try:
                    await client.post("/", content=b"")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        names = list(targets)
        for name in names:  # warm-up
            process, port = targets[name]
            api = name.split(",")[0]
            await lean_frames(f"http://127.0.0.1:{port}", api, 1.0, args.concurrency)
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                process, port = targets[name]
                watched = psutil.Process(process.pid)
                before = cpu_seconds(watched)
                base = f"http://127.0.0.1:{port}"
                api = name.split(",")[0]
                frames = await lean_frames(base, api, args.seconds, args.concurrency)
                results[name].append((cpu_seconds(watched) - before) * 1e6 / frames)
    finally:
        for process in (gateway, floor, stock, coalesced, *baselines):
            if process is None:
                continue
            process.terminate()
            process.wait(timeout=30)
    medians = {name: statistics.median(values) for name, values in results.items()}
    reference = medians[names[0]]
    print(
        f"| API | server CPU µs per frame (median of {args.rounds}) | rounds | ratio to "
        f"{names[0]} | ratio to floor |"
    )
    print("|---|---:|---|---:|---:|")
    for name, value in medians.items():
        rounds = ", ".join(f"{v:.1f}" for v in results[name])
        print(
            f"| {name} | {value:.1f} | {rounds} | {value / reference:.2f} | "
            f"{value / medians['floor']:.2f} |"
        )


async def wait_up(client: httpx.AsyncClient) -> None:
    """Up to 120 s: several servers importing torch at once on two busy cores is slow."""
    for _ in range(1200):
        try:
            if (await client.get("/health/ready")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("gateway did not start")


PROMPT = "Hello there!"
MESSAGES = [{"role": "user", "content": PROMPT}]
#: Tools in every streamed request, so a tool-call parser runs where one is configured.
TOOLS: dict = {}


async def requests_per_second(client: httpx.AsyncClient, seconds: float, concurrency: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        payload = {"model": MODEL_NAME, "messages": MESSAGES, "max_tokens": 1}
        while time.perf_counter() < deadline:
            (await client.post("/v1/chat/completions", json=payload)).raise_for_status()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


async def frames_per_second(
    client: httpx.AsyncClient, seconds: float, concurrency: int, api: str = "chat"
) -> float:
    """Server-sent ``data:`` frames per second; named events (Responses, Messages) count
    their data line only, so a frame is one event in every API."""
    frames = 0
    deadline = time.perf_counter() + seconds
    dialect = DIALECTS[api]
    payload = {**dialect.body(MODEL_NAME, PROMPT, 256, stream=True), **TOOLS}

    async def worker() -> None:
        nonlocal frames
        while time.perf_counter() < deadline:
            async with client.stream("POST", dialect.path, json=payload) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        frames += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return frames / (time.perf_counter() - start)


async def embeddings_per_second(
    client: httpx.AsyncClient, seconds: float, batch: int, encoding: str = "float"
) -> float:
    """Sequential ``/v1/embeddings`` requests of ``batch`` texts: requests/s."""
    done = 0
    texts = [f"a short sentence about the weather, number {i}" for i in range(batch)]
    body = {"model": MODEL_NAME, "input": texts, "encoding_format": encoding}
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        (await client.post("/v1/embeddings", json=body)).raise_for_status()
        done += 1
    return done / (time.perf_counter() - start)


async def frames_by_api(client: httpx.AsyncClient, args: argparse.Namespace) -> dict[str, float]:
    """Median frames/s of each API over interleaved rounds (A, B, C, C, B, A, ...)."""
    apis = args.api.split(",")
    rates: dict[str, list[float]] = {api: [] for api in apis}
    for round_ in range(args.rounds):
        for api in apis if round_ % 2 == 0 else reversed(apis):
            rates[api].append(await frames_per_second(client, args.seconds, 64, api))
    return {api: statistics.median(values) for api, values in rates.items()}


async def main(args: argparse.Namespace) -> None:
    server = subprocess.Popen(
        [
            *(sys.executable, __file__, "--serve", str(args.port), "--reply", args.reply),
            *(["--parsers"] if args.parsers else []),
            *(["--embeddings"] if args.embeddings else []),
        ]
    )
    if args.parsers:
        TOOLS["tools"] = [{"type": "function", "function": {"name": "get_weather"}}]
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{args.port}", timeout=60, limits=limits
        ) as client:
            await wait_up(client)
            if args.embeddings:
                rates = {b: await embeddings_per_second(client, args.seconds, b) for b in (1, 32)}
                return print_embeddings(rates)
            rps = await requests_per_second(client, args.seconds, 16)
            fps = await frames_by_api(client, args)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("| measure | value |")
    print("|---|---|")
    print(f"| non-streaming chat requests/s (concurrency 16, 1 token) | {rps:.0f} |")
    reference = next(iter(fps.values()))
    for api, rate in fps.items():
        print(f"| {api}: streamed frames/s (concurrency 64) | {rate:.0f} |")
        print(f"| {api}: µs per frame, client included (1e6 / frames/s) | {1e6 / rate:.1f} |")
        if len(fps) > 1:
            print(f"| {api}: frames/s ratio to {next(iter(fps))} | {rate / reference:.3f} |")


def print_embeddings(rates: dict[int, float]) -> None:
    print("| batch | /v1/embeddings requests/s (sequential) | µs per request, client included |")
    print("|---:|---:|---:|")
    for batch, rate in rates.items():
        print(f"| {batch} | {rate:.0f} | {1e6 / rate:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--port", type=int, default=8125)
    parser.add_argument("--api", default="chat", help="comma-separated: chat,responses,messages")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds per API")
    parser.add_argument("--reply", choices=["tok", "reasoning-tools"], default="tok")
    parser.add_argument(
        "--parsers", action="store_true", help="serve with the qwen3 and hermes parsers"
    )
    parser.add_argument("--embeddings", action="store_true", help="measure /v1/embeddings")
    parser.add_argument("--cpu", action="store_true", help="server CPU µs per frame")
    parser.add_argument("--concurrency", type=int, default=32, help="streams at once (--cpu)")
    parser.add_argument(
        "--compare-stock", action="store_true", help="--cpu: also chat with stock sse-starlette"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        metavar="TREE",
        help="--cpu: also chat through the gateway checked out at TREE (git worktree add); "
        "repeat for several",
    )
    parser.add_argument(
        "--coalesce-ms",
        type=float,
        default=0.0,
        help="--cpu: also each API through a gateway with --stream-coalesce-ms MS",
    )
    parser.add_argument("--stock-sse", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_floor:
        serve_floor(arguments.serve_floor)
    elif arguments.cpu:
        asyncio.run(cpu_per_frame(arguments))
    elif arguments.serve:
        serve(
            arguments.serve,
            arguments.reply,
            arguments.parsers,
            arguments.embeddings,
            arguments.stock_sse,
            arguments.coalesce_ms,
        )
    else:
        asyncio.run(main(arguments))
