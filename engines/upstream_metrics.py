"""The remote engine's ``vllm:`` gauges: its upstreams' own, aggregated.

A router in front of the gateway reads one set of gauges for the whole pool behind it:
- ``vllm:num_requests_running`` and ``vllm:num_requests_waiting``: the upstreams' sums;
- ``vllm:kv_cache_usage_perc``: the share of all the upstreams' KV-cache blocks in use,
  i.e. their usages weighted by their ``num_gpu_blocks`` (``vllm:cache_config_info``);
  a plain mean when any upstream does not report its block count.
Only an upstream's series for our model (its ``model_name`` label) count; the result is
labelled with the gateway's served name.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

SUMMED = {
    "vllm:num_requests_running": "Number of requests in model execution batches.",
    "vllm:num_requests_waiting": "Number of requests waiting to be processed.",
}
USAGE = "vllm:kv_cache_usage_perc"
USAGE_DOC = "KV-cache usage. 1 means 100 percent usage."


@dataclass(frozen=True, slots=True)
class UpstreamGauges:
    """What one upstream's ``/metrics`` said about one model."""

    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    kv_blocks: int | None = None


def read_gauges(text: str, model_name: str) -> UpstreamGauges | None:
    """The gauges of ``model_name`` in a Prometheus exposition; None without any."""
    values: dict[str, float] = {}
    blocks: int | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model_name") != model_name:
                continue
            if sample.name in SUMMED or sample.name == USAGE:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
            elif sample.name == "vllm:cache_config_info" and "num_gpu_blocks" in sample.labels:
                blocks = _blocks(sample.labels["num_gpu_blocks"], blocks)
    if not values:
        return None
    return UpstreamGauges(
        running=values.get("vllm:num_requests_running", 0.0),
        waiting=values.get("vllm:num_requests_waiting", 0.0),
        kv_usage=values.get(USAGE, 0.0),
        kv_blocks=blocks,
    )


def _blocks(label: str, known: int | None) -> int | None:
    try:
        return (known or 0) + int(label)
    except ValueError:  # "None" before the engine sized its cache
        return known


def aggregate(upstreams: list[UpstreamGauges], served_name: str) -> list[Metric]:
    """The pool's gauges (see the module's docstring); none without any upstream's."""
    if not upstreams:
        return []
    labels = {"model_name": served_name}
    running = GaugeMetricFamily("vllm:num_requests_running", SUMMED["vllm:num_requests_running"])
    running.add_sample(running.name, labels, sum(u.running for u in upstreams))
    waiting = GaugeMetricFamily("vllm:num_requests_waiting", SUMMED["vllm:num_requests_waiting"])
    waiting.add_sample(waiting.name, labels, sum(u.waiting for u in upstreams))
    usage = GaugeMetricFamily(USAGE, USAGE_DOC)
    usage.add_sample(USAGE, labels, kv_usage(upstreams))
    return [running, waiting, usage]


def kv_usage(upstreams: list[UpstreamGauges]) -> float:
    """Usages weighted by block counts, or their plain mean when one count is missing."""
    weights = [u.kv_blocks for u in upstreams]
    if any(not w for w in weights):
        return sum(u.kv_usage for u in upstreams) / len(upstreams)
    return sum(u.kv_usage * w for u, w in zip(upstreams, weights, strict=True)) / sum(weights)
