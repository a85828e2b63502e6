"""The figures of a run, defined as ``vllm bench serve`` and GenAI-Perf define them.

- TTFT: request sent to the first chunk that carries content (a role-only chunk is not
  a token).
- ITL: the gaps between successive content chunks of one request.
- TPOT: (end-to-end latency - TTFT) / (output tokens - 1), for requests with more than
  one output token.
- E2E latency: request sent to its last byte.
- Goodput: requests per second that met every SLO given (``ttft:200 tpot:50`` in ms).

Failed requests are counted and listed, never averaged in and never silently dropped.
Percentiles interpolate linearly between ranks, as ``numpy.percentile`` does.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field

PERCENTILES = (50, 90, 99)
SLO_METRICS = ("ttft", "tpot", "e2el")


@dataclass
class RequestRecord:
    """One request's timeline; times in seconds, relative to the start of the run."""

    index: int
    sent: float
    ok: bool = False
    ttft: float | None = None
    itl: list[float] = field(default_factory=list)
    e2el: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int = 0
    output_tokens_usage: int | None = None
    output_tokens_counted: int | None = None
    status: int | None = None
    error: str | None = None
    #: SSE ``data:`` frames received, [DONE] excluded: what the server's CPU is divided by.
    frames: int = 0

    @property
    def tpot(self) -> float | None:
        if not self.ok or self.output_tokens < 2 or self.ttft is None or self.e2el is None:
            return None
        return (self.e2el - self.ttft) / (self.output_tokens - 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "tpot": self.tpot}


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile with linear interpolation (numpy's default method)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(values: list[float], scale: float = 1000.0) -> dict | None:
    """mean, std, p50, p90, p99, min and max; in ms by default (``scale``)."""
    if not values:
        return None
    scaled = [v * scale for v in values]
    stats = {"mean": statistics.fmean(scaled), "std": statistics.pstdev(scaled)}
    stats.update({f"p{p}": percentile(scaled, p) for p in PERCENTILES})
    stats.update(min=min(scaled), max=max(scaled))
    return stats


def parse_slos(items: list[str]) -> dict[str, float]:
    """``["ttft:200", "tpot:50"]`` -> {"ttft": 0.2, "tpot": 0.05} (ms in, seconds out)."""
    slos = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or name not in SLO_METRICS:
            raise ValueError(f"goodput SLO '{item}': expected NAME:MS with NAME in {SLO_METRICS}")
        try:
            slos[name] = float(value) / 1000
        except ValueError:
            raise ValueError(f"goodput SLO '{item}': '{value}' is not a number of ms") from None
    return slos


def meets(record: RequestRecord, slos: dict[str, float]) -> bool:
    if not record.ok:
        return False
    for name, limit in slos.items():
        value = getattr(record, name)
        if value is not None and value > limit:
            return False
        if value is None and name != "tpot":  # a one-token reply has no TPOT to miss
            return False
    return True


def summarize(records: list[RequestRecord], duration: float, slos: dict[str, float]) -> dict:
    """Everything the report shows for one load level."""
    done = [r for r in records if r.ok]
    failed = [r for r in records if not r.ok]
    output_tokens = sum(r.output_tokens for r in done)
    input_tokens = sum(r.prompt_tokens or 0 for r in done)
    errors = Counter((r.status, r.error) for r in failed)
    return {
        "requests": len(records),
        "completed": len(done),
        "failed": len(failed),
        "errors": [
            {"status": status, "error": error, "count": count}
            for (status, error), count in errors.most_common()
        ],
        "duration_s": duration,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "frames": sum(r.frames for r in records),
        "request_throughput": len(done) / duration if duration else 0.0,
        "output_throughput": output_tokens / duration if duration else 0.0,
        "total_token_throughput": (input_tokens + output_tokens) / duration if duration else 0.0,
        "goodput": (sum(meets(r, slos) for r in records) / duration if slos and duration else None),
        "slos_ms": {name: limit * 1000 for name, limit in slos.items()},
        "ttft_ms": distribution([r.ttft for r in done if r.ttft is not None]),
        "tpot_ms": distribution([r.tpot for r in done if r.tpot is not None]),
        "itl_ms": distribution([gap for r in done for gap in r.itl]),
        "e2el_ms": distribution([r.e2el for r in done if r.e2el is not None]),
        "token_count_mismatches": sum(
            1
            for r in done
            if r.output_tokens_usage is not None
            and r.output_tokens_counted is not None
            and r.output_tokens_usage != r.output_tokens_counted
        ),
    }
