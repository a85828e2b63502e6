"""``openai-frontend bench``: flags, then one load run per concurrency level."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import sys
from pathlib import Path

import httpx
import orjson

from openai_frontend.bench import report
from openai_frontend.bench.client import ENDPOINTS, RequestShape
from openai_frontend.bench.corpus import LengthSampler, jsonl_prompts, synthetic_prompts
from openai_frontend.bench.load import LoadPlan, run_load, warm_up
from openai_frontend.bench.metrics import parse_slos, summarize
from openai_frontend.bench.server_metrics import deltas, scrape_all


def add_parser(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser(
        "bench",
        help="load-test any OpenAI-compatible server and report TTFT, ITL, TPOT, throughput",
    )
    target = bench.add_argument_group("target")
    target.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL")
    target.add_argument("--model", help="model name (default: the server's first model)")
    target.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"))
    target.add_argument("--endpoint", choices=sorted(ENDPOINTS), default="chat")
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
        type=_json_object,
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


def _json_object(value: str) -> dict:
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--extra-body is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("--extra-body must be a JSON object")
    return parsed


def run(args: argparse.Namespace) -> int:
    try:
        slos = parse_slos(args.goodput)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_run(args, slos))


async def _run(args: argparse.Namespace, slos: dict[str, float]) -> int:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(
        base_url=args.url.rstrip("/"), headers=headers, timeout=args.timeout, limits=limits
    ) as client:
        try:
            model = args.model or await _first_model(client)
            tokenizer = _tokenizer(args, model)
        except (httpx.HTTPError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        shape = RequestShape(model, args.endpoint, args.stream, args.ignore_eos, args.extra_body)
        prompts = _prompts(args, tokenizer)
        result = {
            "tool": "openai-frontend bench",
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "config": _config(args, model),
            "runs": [],
        }
        for concurrency in args.concurrency:
            result["runs"].append(
                await _level(client, shape, prompts, args, concurrency, tokenizer, slos)
            )
    print(report.table(result))
    _write_outputs(result, args)
    return 0 if any(run["summary"]["completed"] for run in result["runs"]) else 1


async def _level(client, shape, prompts, args, concurrency, tokenizer, slos) -> dict:
    plan = LoadPlan(
        concurrency=concurrency,
        num_requests=None if args.duration else (args.num_requests or 4 * concurrency),
        duration=args.duration,
        request_rate=args.request_rate,
        burstiness=args.burstiness,
        warmup=args.warmup,
        seed=args.seed,
    )
    await warm_up(client, shape, prompts, plan, tokenizer)
    before = await scrape_all(client, args.server_metrics)
    records, duration = await run_load(client, shape, prompts, plan, tokenizer, f"c={concurrency}")
    after = await scrape_all(client, args.server_metrics)
    summary = summarize(records, duration, slos)
    print(
        f"concurrency {concurrency}: {summary['completed']}/{summary['requests']} ok, "
        f"{summary['output_throughput']:.1f} output tok/s",
        file=sys.stderr,
    )
    return {
        "concurrency": concurrency,
        "request_rate": "inf" if math.isinf(args.request_rate) else args.request_rate,
        "summary": summary,
        "requests": [record.as_dict() for record in records],
        "server_metrics": deltas(before, after),
    }


async def _first_model(client: httpx.AsyncClient) -> str:
    response = await client.get("/v1/models")
    response.raise_for_status()
    models = response.json().get("data") or []
    if not models:
        raise ValueError("the server lists no models; pass --model")
    return models[0]["id"]


def _tokenizer(args: argparse.Namespace, model: str):
    """The model's tokenizer: --tokenizer, the model name if it is a folder, or our
    cached default model when that is what is served."""
    from openai_frontend.default_model import MODEL_NAME, default_model_dir, is_prepared

    path = args.tokenizer
    if path is None and Path(model).is_dir():
        path = model
    if path is None and model == MODEL_NAME and is_prepared(default_model_dir()):
        path = str(default_model_dir())
    if path is None:
        if args.dataset is None:
            raise ValueError("synthetic prompts need the model's tokenizer: pass --tokenizer")
        return None  # JSONL prompts; output tokens then come from usage only
    from engines.hf_tokenizer import HFTokenizer

    return HFTokenizer(path)


def _prompts(args: argparse.Namespace, tokenizer):
    import random

    rng = random.Random(args.seed)
    output_len = LengthSampler(args.output_len, args.output_len_std, rng)
    if args.dataset is not None:
        return jsonl_prompts(args.dataset, output_len)
    input_len = LengthSampler(args.input_len, args.input_len_std, rng)
    return synthetic_prompts(tokenizer, input_len, output_len, args.seed)


def _config(args: argparse.Namespace, model: str) -> dict:
    config = {k: v for k, v in vars(args).items() if k not in {"api_key", "func", "command"}}
    config["model"] = model
    config["request_rate"] = "inf" if math.isinf(args.request_rate) else args.request_rate
    return {k: str(v) if isinstance(v, Path) else v for k, v in config.items()}


def _write_outputs(result: dict, args: argparse.Namespace) -> None:
    if args.export:
        report.export_json(result, args.export)
        print(f"wrote {args.export}", file=sys.stderr)
    for item in args.report:
        template, _, out = item.partition("=")
        text = report.render(result, template)
        if out:
            Path(out).write_text(text)
            print(f"wrote {out}", file=sys.stderr)
        else:
            print(text)
    if args.plot:
        for path in report.plot(result, args.plot):
            print(f"wrote {path}", file=sys.stderr)
