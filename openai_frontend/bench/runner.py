"""One ``openai-frontend bench`` run: a load run per concurrency level, then the outputs.

Imported only when ``bench`` runs, so ``openai-frontend serve`` does not pay for httpx,
tqdm, prometheus-client's parser and the report code at start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import random
import sys
from pathlib import Path

import httpx

from openai_frontend.bench import report
from openai_frontend.bench.client import RequestShape
from openai_frontend.bench.corpus import LengthSampler, jsonl_prompts, synthetic_prompts
from openai_frontend.bench.load import LoadPlan, run_load, warm_up
from openai_frontend.bench.metrics import parse_slos, summarize
from openai_frontend.bench.server_metrics import cpu_us_per_frame, deltas, scrape_all


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
    server_rows = deltas(before, after)
    summary["server_cpu_us_per_frame"] = cpu_us_per_frame(server_rows, summary["frames"])
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
        "server_metrics": server_rows,
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
