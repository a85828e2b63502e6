"""Memory under load: does the gateway's RSS keep growing over 20,000 mixed requests?

Sends ``--requests`` requests in ``--checkpoints`` equal batches (at most ``--concurrency``
in flight), mixed the way a busy gateway sees them: chat, completions, Responses and
Messages, streamed and not, some streams dropped by the client after their first text
frame, some bodies a 4xx (bad fields, unknown model or stored response, broken JSON),
some Responses stored. After each batch, with the gateway idle, it reads the gateway
process's RSS (psutil on the server's pid; with the default model vLLM's engine core is
a child process and is reported apart), and a sampler reads it every ``--interval``
seconds throughout for the peak. The figure that matters is the growth over the last
half of the run (the first half includes warm-up: caches filling, the allocator's
arenas settling); the bar is at most 5%.

``--engine synthetic`` serves ``SyntheticTokenEngine`` (NOT a model: instant " tok"
deltas, from scripts/bench_gateway_overhead.py) to measure the frontend alone;
``--engine default`` serves the default model on the real vLLM CPU engine through
``openai-frontend serve``'s own entry point (hold /tmp/engine.lock where other engines
run). Either way stored responses go to a throwaway SQLite file (``--store none``:
nowhere).
``--malloc jemalloc`` starts the server with Debian's libjemalloc2 in ``LD_PRELOAD``
(``apt-get install libjemalloc2``) and checks that it really is mapped.
``--tracemalloc`` runs the server under tracemalloc and prints the lines whose live
allocations grew most over the last half (slow, and the snapshot taken at the half
inflates the RSS after it: for finding a leak, not for figures).

    .venv/bin/python scripts/soak.py [--engine synthetic|default] [--malloc glibc|jemalloc]
        [--requests 20000] [--concurrency 16] [--max-tokens 16] [--json report.json]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import pickle
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from openai_frontend.bench.dialects import DIALECTS  # noqa: E402
from openai_frontend.default_model import MODEL_NAME, ensure_default_model  # noqa: E402

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
#: Set in the server's environment: the folder tracemalloc snapshots are written to.
TRACEMALLOC_ENV = "SOAK_TRACEMALLOC_DIR"
MIB = 1024 * 1024
RESPONSES_MIN_TOKENS = 16

#: Requests that must come back 4xx: (method, path, JSON body or raw bytes).
BAD_REQUESTS: list[tuple[str, str, dict | bytes]] = [
    ("POST", "/v1/chat/completions", {"model": MODEL_NAME, "messages": [], "max_tokens": -1}),
    ("POST", "/v1/chat/completions", {"model": MODEL_NAME}),
    ("POST", "/v1/chat/completions", {"model": "no-such-model", "messages": [{"role": "user"}]}),
    ("POST", "/v1/chat/completions", b'{"model": "' + MODEL_NAME.encode() + b'", "messages": ['),
    ("POST", "/v1/completions", {"model": MODEL_NAME, "prompt": "hi", "temperature": "hot"}),
    ("POST", "/v1/responses", {"model": MODEL_NAME, "input": "hi", "max_output_tokens": 0}),
    ("GET", "/v1/responses/resp_does_not_exist", b""),
    (
        "POST",
        "/v1/messages",
        {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}]},
    ),
]


@dataclass
class Tally:
    """What came back, by kind; ``unexpected`` lists anything that should not have."""

    by_api: dict[str, int] = field(default_factory=dict)
    streamed: int = 0
    not_streamed: int = 0
    disconnected: int = 0
    client_errors: int = 0
    stored: int = 0
    unexpected: list[str] = field(default_factory=list)

    def count(self, api: str) -> None:
        self.by_api[api] = self.by_api.get(api, 0) + 1


@dataclass(frozen=True)
class Plan:
    """One request of the mix."""

    index: int
    api: str
    stream: bool = False
    disconnect: bool = False
    store: bool = False
    bad: int | None = None


def plan_requests(total: int, seed: int) -> list[Plan]:
    """The mix: 1 in 10 a 4xx; of the rest, APIs uniform, half streamed, 1 in 4 streams
    dropped early, 1 in 4 non-streamed Responses stored."""
    rng = random.Random(seed)
    bad = itertools.cycle(range(len(BAD_REQUESTS)))
    plans = []
    for index in range(total):
        if rng.random() < 0.1:
            plans.append(Plan(index, "bad", bad=next(bad)))
            continue
        api = rng.choice(list(DIALECTS))
        stream = rng.random() < 0.5
        disconnect = stream and rng.random() < 0.25
        store = api == "responses" and not stream and rng.random() < 0.25
        plans.append(Plan(index, api, stream, disconnect, store))
    return plans


class Client:
    """Sends one planned request and checks its outcome."""

    def __init__(self, http: httpx.AsyncClient, max_tokens: int, tally: Tally) -> None:
        self._http = http
        self._max_tokens = max_tokens
        self._tally = tally

    async def send(self, plan: Plan) -> None:
        try:
            if plan.bad is not None:
                await self._bad(plan.bad)
            elif plan.stream:
                await self._stream(plan)
            else:
                await self._whole(plan)
        except httpx.HTTPError as error:
            self._tally.unexpected.append(f"{plan}: {type(error).__name__}: {error}")

    def _body(self, plan: Plan, max_tokens: int) -> dict:
        text = f"Hello there! This is request number {plan.index}."
        if plan.api == "responses":  # OpenAI's floor for max_output_tokens
            max_tokens = max(max_tokens, RESPONSES_MIN_TOKENS)
        body = DIALECTS[plan.api].body(MODEL_NAME, text, max_tokens, plan.stream)
        return {**body, "store": True} if plan.store else body

    async def _bad(self, which: int) -> None:
        method, path, body = BAD_REQUESTS[which]
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        reply = await self._http.request(method, path, content=content or None, headers=headers)
        self._tally.count("bad")
        if 400 <= reply.status_code < 500:
            self._tally.client_errors += 1
        else:
            self._tally.unexpected.append(f"bad request {which}: {reply.status_code}")

    async def _whole(self, plan: Plan) -> None:
        reply = await self._http.post(
            DIALECTS[plan.api].path, json=self._body(plan, self._max_tokens)
        )
        self._tally.count(plan.api)
        self._tally.not_streamed += 1
        self._tally.stored += plan.store
        if reply.status_code != 200:
            self._tally.unexpected.append(f"{plan}: {reply.status_code} {reply.text[:200]}")

    async def _stream(self, plan: Plan) -> None:
        """A stream read to its end, or dropped after its first text frame (asking for
        more tokens then, so the server is still generating when the client leaves)."""
        dialect = DIALECTS[plan.api]
        max_tokens = self._max_tokens * 4 if plan.disconnect else self._max_tokens
        body = self._body(plan, max_tokens)
        self._tally.count(plan.api)
        self._tally.streamed += 1
        async with self._http.stream("POST", dialect.path, json=body) as reply:
            if reply.status_code != 200:
                await reply.aread()
                self._tally.unexpected.append(f"{plan}: {reply.status_code} {reply.text[:200]}")
                return
            async for line in reply.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                if error := dialect.event_error(event):
                    self._tally.unexpected.append(f"{plan}: stream error {error}")
                    return
                if plan.disconnect and dialect.event_text(event):
                    self._tally.disconnected += 1
                    return  # leaving the block closes the connection mid-stream


class RssSampler:
    """The server's RSS every ``interval`` seconds, for the peak."""

    def __init__(self, process: psutil.Process, interval: float) -> None:
        self._process = process
        self._interval = interval
        self.peak = 0
        self.samples = 0

    async def run(self) -> None:
        while True:
            self.peak = max(self.peak, self._process.memory_info().rss)
            self.samples += 1
            await asyncio.sleep(self._interval)


@dataclass
class Checkpoint:
    requests: int
    seconds: float
    rss_mib: float
    #: RSS of the server's child processes (vLLM's engine core), summed.
    children_rss_mib: float


def children_rss(process: psutil.Process) -> int:
    total = 0
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


async def checkpoint(process: psutil.Process, done: int, start: float) -> Checkpoint:
    """RSS once the batch's dropped streams have wound down on the server."""
    await asyncio.sleep(0.5)
    rss = process.memory_info().rss
    return Checkpoint(done, time.perf_counter() - start, rss / MIB, children_rss(process) / MIB)


def growth(before: Checkpoint, after: Checkpoint) -> tuple[float, float]:
    """(MiB, percent) the server's RSS grew from ``before`` to ``after``."""
    mib = after.rss_mib - before.rss_mib
    return mib, 100 * mib / before.rss_mib


# --- the server side -------------------------------------------------------------------


def install_tracemalloc_hook() -> None:
    """With $SOAK_TRACEMALLOC_DIR set: trace allocations, and on SIGUSR1 collect the
    garbage (cycles left by cancelled streams are not a leak) and write a snapshot there
    (``snapshot-N.pickle``, renamed into place once complete)."""
    folder = os.environ.get(TRACEMALLOC_ENV)
    if not folder:
        return
    tracemalloc.start(8)
    taken = itertools.count()

    def dump(signum: int, frame: object) -> None:
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        target = Path(folder) / f"snapshot-{next(taken)}.pickle"
        partial = target.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(snapshot))
        partial.rename(target)

    signal.signal(signal.SIGUSR1, dump)


def serve(engine: str, port: int, store: str) -> None:
    """The gateway under test, in this (child) process."""
    install_tracemalloc_hook()
    model = ensure_default_model()
    if engine == "default":
        from openai_frontend.cli import main

        argv = ["serve", str(model), "--served-model-name", MODEL_NAME, "--port", str(port)]
        sys.exit(main([*argv, "--log-level", "warning", "--response-store", store]))
    import uvicorn

    from engines.synthetic import SyntheticTokenEngine
    from openai_frontend.app import create_app
    from openai_frontend.config import ServerConfig

    config = ServerConfig(
        model_path=model, served_model_name=MODEL_NAME, port=port, response_store=store
    )
    app = create_app(config, SyntheticTokenEngine(model, MODEL_NAME))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --- the client side -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(args: argparse.Namespace, port: int, workdir: Path) -> subprocess.Popen:
    env = dict(os.environ)
    if args.malloc == "jemalloc":
        if not Path(JEMALLOC).is_file():
            sys.exit(f"{JEMALLOC} is missing: apt-get install libjemalloc2")
        env["LD_PRELOAD"] = JEMALLOC
    if args.tracemalloc:
        env[TRACEMALLOC_ENV] = str(workdir)
    command = [sys.executable, __file__, "--serve", args.engine, str(port)]
    command.append(str(workdir / "responses.sqlite") if args.store == "file" else "none")
    log = log_path(args).open("w")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def log_path(args: argparse.Namespace) -> Path:
    return ROOT / f"bench-soak-{args.engine}-{args.malloc}.log"


def allocator_of(process: psutil.Process) -> str:
    """``jemalloc`` if libjemalloc is mapped into the server, else ``glibc``."""
    mapped = Path(f"/proc/{process.pid}/maps").read_text()
    return "jemalloc" if "libjemalloc" in mapped else "glibc"


async def wait_ready(http: httpx.AsyncClient, server: subprocess.Popen, log: Path) -> None:
    for _ in range(1200):
        if server.poll() is not None:
            sys.exit(f"the server exited; see {log}")
        try:
            if (await http.get("/health/ready")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    sys.exit(f"the server did not become ready; see {log}")


async def snapshot(server: subprocess.Popen, workdir: Path, number: int) -> Path:
    """Ask the server for tracemalloc snapshot ``number`` and wait until it is written."""
    target = workdir / f"snapshot-{number}.pickle"
    server.send_signal(signal.SIGUSR1)
    while not target.exists():
        await asyncio.sleep(0.2)
    # The server was blocked while it wrote the snapshot: let it close the keep-alive
    # connections that timed out meanwhile before we reuse them.
    await asyncio.sleep(1)
    return target


def top_growth(before: Path, after: Path, limit: int = 15) -> list[str]:
    """The source lines whose live allocations grew most between the snapshots."""
    old = pickle.loads(before.read_bytes())
    new = pickle.loads(after.read_bytes())
    skip = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = new.filter_traces(skip).compare_to(old.filter_traces(skip), "lineno")
    return [str(stat) for stat in stats[:limit]]


async def soak(args: argparse.Namespace, workdir: Path) -> dict:
    port = args.port or free_port()
    server = start_server(args, port, workdir)
    tally = Tally()
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=args.timeout, limits=limits
        ) as http:
            await wait_ready(http, server, log_path(args))
            plans = plan_requests(args.requests, args.seed)
            client = Client(http, args.max_tokens, tally)
            run = await run_batches(args, server, client, plans, workdir)
    finally:
        server.terminate()
        server.wait(timeout=60)
    return report(args, run, tally)


@dataclass
class Run:
    allocator: str
    points: list[Checkpoint] = field(default_factory=list)
    peak_mib: float = 0.0
    snapshots: list[Path] = field(default_factory=list)


async def run_batches(
    args: argparse.Namespace,
    server: subprocess.Popen,
    client: Client,
    plans: list[Plan],
    workdir: Path,
) -> Run:
    """Every batch at ``--concurrency``, then a checkpoint; a tracemalloc snapshot at the
    half and at the end when asked. SIGTERM ends the run early: the requests in flight
    are dropped and the report covers the requests that finished."""
    process = psutil.Process(server.pid)
    run = Run(allocator_of(process))
    gate = asyncio.Semaphore(args.concurrency)
    finished = 0

    async def one(plan: Plan) -> None:
        nonlocal finished
        async with gate:
            await client.send(plan)
        finished += 1

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    sampler = RssSampler(process, args.interval)
    sampling = asyncio.create_task(sampler.run())
    start = time.perf_counter()
    points, snapshots = run.points, run.snapshots
    points.append(await checkpoint(process, 0, start))
    size = -(-len(plans) // args.checkpoints)
    for first in range(0, len(plans), size):
        batch = asyncio.gather(*(one(plan) for plan in plans[first : first + size]))
        await asyncio.wait(
            [batch, asyncio.ensure_future(stop.wait())], return_when="FIRST_COMPLETED"
        )
        if stop.is_set():
            batch.cancel()
            await asyncio.gather(batch, return_exceptions=True)
        points.append(await checkpoint(process, finished, start))
        print(f"{finished} requests, RSS {points[-1].rss_mib:.1f} MiB", file=sys.stderr)
        last = stop.is_set() or finished == len(plans)
        if args.tracemalloc and (last or (finished >= len(plans) // 2 and not snapshots)):
            snapshots.append(await snapshot(server, workdir, len(snapshots)))
        if stop.is_set():
            break
    sampling.cancel()
    stopping.cancel()
    run.peak_mib = sampler.peak / MIB
    return run


def report(args: argparse.Namespace, run: Run, tally: Tally) -> dict:
    points = run.points
    done = points[-1].requests
    middle = min(points, key=lambda point: abs(point.requests - done / 2))
    last_mib, last_pct = growth(middle, points[-1])
    first_mib, first_pct = growth(points[0], middle)
    result = {
        "engine": args.engine,
        "allocator": run.allocator,
        "requests": done,
        "requests_planned": args.requests,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "seconds": round(points[-1].seconds, 1),
        "rss_start_mib": round(points[0].rss_mib, 1),
        "rss_half_mib": round(middle.rss_mib, 1),
        "rss_end_mib": round(points[-1].rss_mib, 1),
        "rss_peak_mib": round(run.peak_mib, 1),
        "growth_first_half_mib": round(first_mib, 2),
        "growth_first_half_pct": round(first_pct, 2),
        "growth_last_half_mib": round(last_mib, 2),
        "growth_last_half_pct": round(last_pct, 2),
        "last_half_from_request": middle.requests,
        "children_rss_half_mib": round(middle.children_rss_mib, 1),
        "checkpoints": [asdict(point) for point in points],
        "tally": asdict(tally),
    }
    if len(run.snapshots) == 2:
        result["tracemalloc_top_growth"] = top_growth(*run.snapshots)
    return result


def print_report(result: dict) -> None:
    tally = result["tally"]
    print(f"| {result['engine']} engine, {result['allocator']} | value |")
    print("|---|---|")
    rows = {
        "requests (seconds)": f"{result['requests']} of {result['requests_planned']} planned"
        f" ({result['seconds']} s)",
        "by API": ", ".join(f"{api} {n}" for api, n in sorted(tally["by_api"].items())),
        "streamed / not / dropped mid-stream / 4xx": (
            f"{tally['streamed']} / {tally['not_streamed']} / {tally['disconnected']}"
            f" / {tally['client_errors']}"
        ),
        "unexpected outcomes": len(tally["unexpected"]),
        "RSS start / half / end / peak (MiB)": (
            f"{result['rss_start_mib']} / {result['rss_half_mib']} / {result['rss_end_mib']}"
            f" / {result['rss_peak_mib']}"
        ),
        "growth, first half": (
            f"{result['growth_first_half_mib']:+.1f} MiB ({result['growth_first_half_pct']:+.2f}%)"
        ),
        f"growth, last half (from request {result['last_half_from_request']})": (
            f"{result['growth_last_half_mib']:+.1f} MiB ({result['growth_last_half_pct']:+.2f}%)"
        ),
    }
    children = [point["children_rss_mib"] for point in result["checkpoints"]]
    if any(children):
        rows["child processes' RSS start / half / end (MiB)"] = (
            f"{children[0]:.1f} / {result['children_rss_half_mib']:.1f} / {children[-1]:.1f}"
        )
    for name, value in rows.items():
        print(f"| {name} | {value} |")
    for line in tally["unexpected"][:10]:
        print("unexpected:", line)
    for line in result.get("tracemalloc_top_growth", []):
        print("tracemalloc:", line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--engine", choices=["synthetic", "default"], default="synthetic")
    parser.add_argument("--malloc", choices=["glibc", "jemalloc"], default="glibc")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--checkpoints", type=int, default=20, help="RSS reads at idle moments")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--max-tokens", type=int, default=16, help="per request (x4 if dropped; Responses >= 16)"
    )
    parser.add_argument("--interval", type=float, default=0.5, help="RSS sampling period, s")
    parser.add_argument("--timeout", type=float, default=300, help="per request, s")
    parser.add_argument(
        "--store", choices=["file", "none"], default="file", help="the server's --response-store"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--tracemalloc", action="store_true", help="find what grows (slow)")
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument(
        "--serve", nargs=3, metavar=("ENGINE", "PORT", "STORE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        engine, port, store = args.serve
        return serve(engine, int(port), store)
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        result = asyncio.run(soak(args, Path(workdir)))
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    sys.exit(1 if result["tally"]["unexpected"] else 0)


if __name__ == "__main__":
    main()
