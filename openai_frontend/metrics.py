"""Prometheus metrics, labelled by model (an adapter counts under its own name).

Histograms follow vLLM's set (vllm#1870): time to first token, inter-token latency,
end-to-end latency, prompt and generation lengths; counters of requests by finish
reason, of HTTP responses by status, and of tokens (prompt tokens served from the
engine's prefix cache among them); a gauge of running requests; and the event loop's
lag (:mod:`openai_frontend.loop_lag`), which every request feels.

Beside them, the engines' own metrics by vLLM's names (``vllm:num_requests_waiting``,
``vllm:kv_cache_usage_perc``, ...), which routers and vLLM's dashboards read: the engine
computes those (:class:`engines.base.MetricsSource`), this module only exports them.

With several API processes (``--api-server-count``) every metric lives in
prometheus_client's multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set by the
supervisor), and any process's ``/metrics`` reads them all: counters and histograms
summed, gauges summed over the live processes, and
``openai_frontend_api_server_responses{index,pid}`` saying which processes are up and
how many responses each gave. ``process_*`` series are summed over those processes by
:class:`openai_frontend.metrics_multiprocess.ProcessSums`.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import AsyncIterator
from contextlib import aclosing

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

from engines.base import MetricsSource
from openai_frontend.generation import ChoiceDelta
from openai_frontend.metrics_multiprocess import (
    admission_gauges,
    render_multiprocess,
    served_by_gauge,
)

_PREFIX = "openai_frontend"
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: Event-loop stalls: anything past 0.1 s is a stall every open stream sees.
_LOOP_LAG = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_TOKENS = (1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


class Metrics:
    """One registry per app, so several apps in one process (tests) never collide.

    ``api_server`` (index, count) when this is one of several API processes: then
    ``/metrics`` renders every process's multiprocess files, not this registry."""

    def __init__(self, api_server: tuple[int, int] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = api_server is not None
        #: Collectors rendered beside the multiprocess files (engines' own, remote's).
        self._beside: list = []
        #: With several API processes: the admission queue whose figures
        #: :meth:`refresh` writes, and the gauges it writes them to.
        self._admission = None
        if not self.multiprocess:
            # process_cpu_seconds_total, resident memory, open fds: what vLLM's /metrics
            # also has, and what `openai-frontend bench` divides by frames.
            ProcessCollector(registry=self.registry)
        model = ["model"]

        def histogram(name: str, doc: str, buckets: tuple) -> Histogram:
            return Histogram(
                f"{_PREFIX}_{name}", doc, model, buckets=buckets, registry=self.registry
            )

        self.ttft = histogram("time_to_first_token_seconds", "Time to first token.", _LATENCY)
        self.itl = histogram(
            "inter_token_latency_seconds", "Time between streamed deltas.", _LATENCY
        )
        self.e2e = histogram("e2e_request_latency_seconds", "End-to-end request latency.", _LATENCY)
        self.prompt_length = histogram(
            "request_prompt_tokens", "Prompt length per request.", _TOKENS
        )
        self.generation_length = histogram(
            "request_generation_tokens", "Generated tokens per request.", _TOKENS
        )
        self.finished = Counter(
            f"{_PREFIX}_request_success",
            "Finished sequences by finish reason.",
            ["model", "finish_reason"],
            registry=self.registry,
        )
        self.responses = Counter(
            f"{_PREFIX}_http_responses",
            "HTTP responses by status code (model empty before one is named).",
            ["model", "status"],
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            f"{_PREFIX}_prompt_tokens", "Prompt tokens processed.", model, registry=self.registry
        )
        self.generation_tokens = Counter(
            f"{_PREFIX}_generation_tokens", "Tokens generated.", model, registry=self.registry
        )
        self.prefix_cache_hits = Counter(
            f"{_PREFIX}_prefix_cache_hit_tokens",
            "Prompt tokens the engine served from its prefix cache instead of computing.",
            model,
            registry=self.registry,
        )
        self.running = Gauge(
            f"{_PREFIX}_requests_running",
            "Requests generating now.",
            model,
            registry=self.registry,
            multiprocess_mode="livesum",  # only read with several API processes
        )
        self.loop_lag = Histogram(
            f"{_PREFIX}_event_loop_lag_seconds",
            "How late the event loop ran its probe because of this process's own work.",
            buckets=_LOOP_LAG,
            registry=self.registry,
        )
        self.served_by = None
        if api_server is not None:
            self.served_by = served_by_gauge(self.registry, *api_server)

    def count_response(self, status: int, model: str) -> None:
        """One HTTP response, by status and model; with several API processes, one
        more for this process when it named a model (an API call, not a probe)."""
        self.responses.labels(model, status).inc()
        if self.served_by is not None and model:
            self.served_by.inc()

    def watch_on_demand(self, on_demand, model: str) -> None:
        """Count on-demand adapter loads and evictions (--lora-on-demand)."""
        loads = Counter(
            f"{_PREFIX}_lora_loads",
            "Adapters loaded into the engine on first use.",
            ["model", "adapter"],
            registry=self.registry,
        )
        evictions = Counter(
            f"{_PREFIX}_lora_evictions",
            "On-demand adapters evicted, least recently used, beyond --max-loras.",
            ["model", "adapter"],
            registry=self.registry,
        )
        on_demand.on_load = lambda name: loads.labels(model, name).inc()
        on_demand.on_evict = lambda name: evictions.labels(model, name).inc()

    def watch_admission(self, admission) -> None:
        """Gauges read from the admission queue whenever /metrics is scraped (with
        several API processes, each process's share, written by :meth:`refresh`)."""
        if self.multiprocess:
            self._admission = admission
            self._waiting, self._admitted = admission_gauges(self.registry)
            return
        waiting = Gauge(
            f"{_PREFIX}_requests_waiting", "Requests queued for a slot.", registry=self.registry
        )
        waiting.set_function(lambda: admission.waiting)
        admitted = Gauge(
            f"{_PREFIX}_requests_admitted",
            "Sequences holding a slot (n per request).",
            registry=self.registry,
        )
        admitted.set_function(lambda: admission.running)

    def refresh(self) -> None:
        """Write this process's admission figures to the multiprocess files (another
        process's scrape cannot call this one's functions)."""
        if self._admission is not None:
            self._waiting.set(self._admission.waiting)
            self._admitted.set(self._admission.running)

    def watch_engines(self, engines: list) -> None:
        """Export the engines' own metrics (those that have any) at each scrape.

        With several API processes, an in-process engine's metrics (vLLM's stat logger,
        prometheus_client metrics) are already in the multiprocess files; a remote
        engine's, scraped from its upstreams, are the same in every process."""
        sources = [engine for engine in engines if isinstance(engine, MetricsSource)]
        if self.multiprocess:
            sources = [engine for engine in sources if not engine.in_process]
        if not sources:
            return
        if self.multiprocess:
            self._beside.append(EngineMetrics(sources))
        else:
            self.registry.register(EngineMetrics(sources))

    def render(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        return render_multiprocess(self._beside)

    async def observe(
        self,
        model: str,
        prompt_tokens: int,
        deltas: AsyncIterator[ChoiceDelta],
        log_fields: dict | None = None,
    ) -> AsyncIterator[ChoiceDelta]:
        """Pass deltas through, timing them; the books close however the stream ends.

        ``log_fields`` (the request's access-log record) gets the same figures.
        """
        started = last = time.perf_counter()
        ttft = None
        reasons: list[str] = []
        generated: dict[int, int] = {}
        cached: dict[int, int] = {}
        # Labelled children resolved once per request, not once per token.
        ttft_child, itl = self.ttft.labels(model), BatchedObservations(self.itl.labels(model))
        self.running.labels(model).inc()
        try:
            async with aclosing(deltas):
                async for index, delta in deltas:
                    now = time.perf_counter()
                    # New tokens, by count: remote engines stream text without ids.
                    if delta.completion_tokens > generated.get(index, 0):
                        if ttft is None:
                            ttft = now - started
                            ttft_child.observe(ttft)
                        else:
                            itl.add(now - last)
                        last = now
                    generated[index] = delta.completion_tokens
                    cached[index] = delta.cached_prompt_tokens
                    if delta.finish_reason is not None:
                        self.finished.labels(model, delta.finish_reason).inc()
                        reasons.append(delta.finish_reason)
                    yield index, delta
        finally:
            itl.flush()
            self.running.labels(model).dec()
            total = sum(generated.values())
            elapsed = time.perf_counter() - started
            self.e2e.labels(model).observe(elapsed)
            self.prompt_length.labels(model).observe(prompt_tokens)
            self.generation_length.labels(model).observe(total)
            self.prompt_tokens.labels(model).inc(prompt_tokens)
            self.generation_tokens.labels(model).inc(total)
            self.prefix_cache_hits.labels(model).inc(sum(cached.values()))
            if log_fields is not None:
                log_fields.update(
                    model=model,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=total,
                    cached_tokens=sum(cached.values()),
                    finish_reasons=reasons,
                    ttft_ms=None if ttft is None else round(ttft * 1000, 2),
                    generation_ms=round(elapsed * 1000, 2),
                )


class BatchedObservations:
    """One histogram child's observations, added to it in batches.

    An inter-token latency is observed for every streamed token; ``Histogram.observe``
    takes two locks and scans the buckets, about 1 µs, a measurable share of the
    gateway's CPU per frame. Here a token costs a list append, and every
    :data:`FLUSH_EVERY` observations (and at the end of the stream) the batch lands in
    one increment per bucket touched. The scrape then lags a stream by fewer than
    :data:`FLUSH_EVERY` tokens. It relies on prometheus_client's histogram internals
    (``_upper_bounds``, ``_buckets``, ``_sum``); tests/unit/test_metrics_batching.py
    fails if they change.
    """

    FLUSH_EVERY = 64

    __slots__ = ("_child", "_values")

    def __init__(self, child: Histogram) -> None:
        self._child = child
        self._values: list[float] = []

    def add(self, value: float) -> None:
        self._values.append(value)
        if len(self._values) >= self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        values, self._values = self._values, []
        if not values:
            return
        child = self._child
        # Histogram.observe counts a value in the first bucket whose bound is >= it.
        for bucket, count in Tally(bisect_left(child._upper_bounds, v) for v in values).items():
            child._buckets[bucket].inc(count)
        child._sum.inc(sum(values))


class EngineMetrics:
    """A collector of the engines' metric families, merged by name: with several models
    (``--config``) each engine reports the same names, its series told apart by vLLM's
    ``model_name`` label, and an exposition may hold each family once only."""

    def __init__(self, sources: list[MetricsSource]) -> None:
        self._sources = sources

    def collect(self) -> list[Metric]:
        merged: dict[str, Metric] = {}
        seen: set[tuple] = set()
        for source in self._sources:
            for family in source.engine_metrics():
                into = merged.get(family.name)
                if into is None:  # a copy: a source may hand out the same family again
                    into = Metric(family.name, family.documentation, family.type, family.unit)
                    merged[family.name] = into
                for sample in family.samples:
                    # vLLM's info gauges (cache_config_info) have no model_name label:
                    # two engines of one configuration would repeat a series.
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if key not in seen:
                        seen.add(key)
                        into.samples.append(sample)
        return list(merged.values())
