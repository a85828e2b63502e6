"""The remote engine's gauges: its upstreams' ``vllm:`` gauges, summed or weighted."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engines.upstream_metrics import UpstreamGauges, aggregate, kv_usage, read_gauges
from openai_frontend.metrics import Metrics


def exposition(running: float, waiting: float, usage: float, blocks: str | None) -> str:
    """What a vLLM upstream's /metrics says, written by prometheus_client itself."""
    registry = CollectorRegistry()
    labels = ["model_name", "engine"]
    for name, value in (
        ("vllm:num_requests_running", running),
        ("vllm:num_requests_waiting", waiting),
        ("vllm:kv_cache_usage_perc", usage),
    ):
        gauge = Gauge(name, "doc", labels, registry=registry)
        gauge.labels("m", "0").set(value)
        gauge.labels("other", "0").set(100)  # another model's: never counted
    if blocks is not None:
        info = Gauge(
            "vllm:cache_config_info", "doc", [*labels, "num_gpu_blocks"], registry=registry
        )
        info.labels("m", "0", blocks).set(1)
    return generate_latest(registry).decode()


def test_an_upstreams_gauges_are_read_for_our_model_only():
    assert read_gauges(exposition(2, 3, 0.25, "100"), "m") == UpstreamGauges(2, 3, 0.25, 100)
    assert read_gauges(exposition(2, 3, 0.25, "None"), "m").kv_blocks is None
    assert read_gauges(exposition(2, 3, 0.25, None), "absent") is None
    assert read_gauges("# nothing here\n", "m") is None


def test_counts_are_summed_and_usage_is_the_share_of_all_blocks():
    pool = [UpstreamGauges(2, 3, 0.5, 100), UpstreamGauges(1, 0, 0.1, 300)]
    families = {f.name: f.samples for f in aggregate(pool, "served")}
    assert families["vllm:num_requests_running"][0].value == 3
    assert families["vllm:num_requests_waiting"][0].value == 3
    assert families["vllm:kv_cache_usage_perc"][0].value == (50 + 30) / 400
    assert families["vllm:kv_cache_usage_perc"][0].labels == {"model_name": "served"}
    assert aggregate([], "served") == []


def test_usage_is_a_plain_mean_without_every_block_count():
    assert kv_usage([UpstreamGauges(kv_usage=0.5, kv_blocks=100), UpstreamGauges()]) == 0.25


class Source:
    """An engine's own metrics, as engines.base.MetricsSource has them."""

    def __init__(self, model: str) -> None:
        self.registry = CollectorRegistry()
        Gauge("vllm:num_requests_running", "doc", ["model_name"], registry=self.registry).labels(
            model
        ).set(1)

    def engine_metrics(self):
        return self.registry.collect()


def test_several_engines_export_each_family_once_with_every_models_series():
    metrics = Metrics()
    metrics.watch_engines([Source("a"), Source("b"), object()])
    for _ in range(2):  # each scrape afresh: nothing accumulates
        families = list(text_string_to_metric_families(metrics.render().decode()))
        running = [f for f in families if f.name == "vllm:num_requests_running"]
        assert len(running) == 1
        assert sorted(s.labels["model_name"] for s in running[0].samples) == ["a", "b"]
    assert any(f.name.startswith("openai_frontend_") for f in families)  # ours stay
