"""``openai-frontend bench``: its flags (cheap to import: every CLI start builds them)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from openai_frontend.bench.dialects import DIALECTS
from openai_frontend.cli_types import json_object


def add_parser(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench",
        help="load-test any OpenAI-compatible server and report TTFT, ITL, TPOT, throughput",
    )
    target = bench.add_argument_group("target")
    target.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL")
    target.add_argument("--model", help="model name (default: the server's first model)")
    target.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"))
    target.add_argument("--endpoint", choices=sorted(DIALECTS), default="chat")
    target.add_argument("--no-stream", dest="stream", action="store_false")
    target.add_argument("--timeout", type=float, default=600.0, help="per request, seconds")
    load = bench.add_argument_group("load")
    load.add_argument("--concurrency", type=_int_list, default=[1], help="e.g. 1,8,32 (a sweep)")
    load.add_argument("--request-rate", type=float, default=math.inf, help="Poisson req/s")
    load.add_argument("--burstiness", type=float, default=1.0, help="gamma shape; 1 = Poisson")
    load.add_argument("--num-requests", type=int, help="per level (default: 4 x concurrency)")
    load.add_argument("--duration", type=float, help="seconds per level, instead of a count")
    load.add_argument("--warmup", type=int, default=1, help="requests per level, not counted")
    load.add_argument("--seed", type=int, default=0)
    data = bench.add_argument_group("prompts")
    data.add_argument("--input-len", type=int, default=128)
    data.add_argument("--input-len-std", type=float, default=0.0)
    data.add_argument("--output-len", type=int, default=128)
    data.add_argument("--output-len-std", type=float, default=0.0)
    data.add_argument(
        "--no-ignore-eos",
        dest="ignore_eos",
        action="store_false",
        help="do not send ignore_eos (for servers that reject it)",
    )
    data.add_argument("--dataset", type=Path, help="JSONL prompts instead of synthetic ones")
    data.add_argument("--tokenizer", help="HF tokenizer folder (default: the model's folder)")
    data.add_argument(
        "--extra-body",
        type=json_object,
        default={},
        help="JSON merged into every request, e.g. '{\"temperature\": 0}'",
    )
    out = bench.add_argument_group("results")
    out.add_argument(
        "--goodput",
        nargs="+",
        default=[],
        metavar="NAME:MS",
        help="SLOs for goodput, e.g. ttft:200 tpot:50 (e2el too)",
    )
    out.add_argument(
        "--server-metrics",
        action="append",
        default=[],
        metavar="URL",
        help="a Prometheus endpoint to diff around each level (repeatable)",
    )
    out.add_argument("--export", type=Path, help="write per-request records and summaries")
    out.add_argument(
        "--report",
        action="append",
        default=[],
        metavar="TEMPLATE[=OUT]",
        help="render through 'markdown', 'html' or a .j2 file (repeatable)",
    )
    out.add_argument("--plot", type=Path, metavar="DIR", help="write PNG plots here")


def _int_list(value: str) -> list[int]:
    try:
        levels = [int(item) for item in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a list like 1,8,32") from None
    if any(level < 1 for level in levels):
        raise argparse.ArgumentTypeError("concurrency levels must be at least 1")
    return levels


def run(args: argparse.Namespace) -> int:
    from openai_frontend.bench.runner import run as run_bench

    return run_bench(args)
