"""Microseconds per delta of the output parser stage (openai_frontend.parsing), alone.

The stream is synthetic: a Qwen3-style reply with a ``<think>`` section, an answer and
two ``<tool_call>`` blocks, cut into token-sized deltas of 1-7 characters (so markers
are split across deltas and the hold-back works). Each scenario runs the router's
per-delta work: ``parser.parse(delta)`` and the chunk's ``delta`` object. "no parser"
is today's router (``{"content": delta.text}``). Compare the added µs with the
gateway's µs per frame from ``scripts/bench_gateway_overhead.py``; the target is at
most 10 % of it.

    .venv/bin/python scripts/bench_output_parser.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.base import Delta  # noqa: E402
from openai_frontend.parsing.registry import make_output_parser  # noqa: E402

WORDS = [
    "the",
    "model",
    "thinks",
    "about",
    "weather",
    "in",
    "Paris",
    "and",
    "then",
    "answers",
    "<",
    "with",
    "some",
    "[markup]",
    "ok",
]


def synthetic_reply(seed: int = 0) -> tuple[str, str]:
    """(a reply with reasoning and tool calls, a plain reply of the same length)."""
    rng = random.Random(seed)
    thought = " ".join(rng.choice(WORDS) for _ in range(300))
    answer = " ".join(rng.choice(WORDS) for _ in range(100))
    call = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
    calls = "".join(f"<tool_call>\n{json.dumps(call)}\n</tool_call>\n" for _ in range(2))
    full = f"<think>\n{thought}\n</think>\n\n{answer}\n{calls}"
    plain = " ".join(rng.choice(WORDS) for _ in range(len(full) // 5))[: len(full)]
    return full, plain


def deltas_of(text: str, seed: int = 1) -> list[Delta]:
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(text):
        size = rng.randint(1, 7)
        pieces.append(text[at : at + size])
        at += size
    last = len(pieces)
    return [
        Delta(piece, [0], count, "stop" if count == last else None)
        for count, piece in enumerate(pieces, start=1)
    ]


def per_delta_us(run: Callable[[], None], deltas: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(5):  # best of 5 rounds: the machine is shared
        start = time.perf_counter()
        for _ in range(repeat):
            run()
        best = min(best, time.perf_counter() - start)
    return best / (repeat * deltas) * 1e6


def no_parser(deltas: list[Delta]) -> Callable[[], None]:
    def run() -> None:
        for delta in deltas:
            if delta.text:
                _ = {"content": delta.text}

    return run


def with_parser(deltas: list[Delta], reasoning: str | None, tools: str | None) -> Callable:
    def run() -> None:
        parser = make_output_parser(reasoning, tools)
        for delta in deltas:
            parsed = parser.parse(delta)
            if parsed:
                _ = parsed.to_openai()

    return run


def main(args: argparse.Namespace) -> None:
    full, plain = synthetic_reply()
    streams = {"reasoning + tool calls": deltas_of(full), "plain text": deltas_of(plain)}
    print("| stream | parsers | µs per delta | added µs per delta |")
    print("|---|---|---|---|")
    for label, deltas in streams.items():
        base = per_delta_us(no_parser(deltas), len(deltas), args.repeat)
        print(f"| {label} ({len(deltas)} deltas) | none (today's router) | {base:.2f} | - |")
        for reasoning, tools in (("qwen3", None), (None, "hermes"), ("qwen3", "hermes")):
            run = with_parser(deltas, reasoning, tools)
            cost = per_delta_us(run, len(deltas), args.repeat)
            names = " + ".join(name for name in (reasoning, tools) if name)
            print(f"| {label} | {names} | {cost:.2f} | {cost - base:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=200)
    main(parser.parse_args())
