"""``/metrics`` with several API processes (``--api-server-count``): prometheus_client's
multiprocess mode.

Each process writes its metrics to files in ``PROMETHEUS_MULTIPROC_DIR`` (the supervisor
makes one per run), and the process a scrape reaches reads every process's files, so any
of them answers for all. Gauges that only the owning process can compute (the admission
queue's, ``process_*``) are written by that process or computed here for every live one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import psutil
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

#: The gauge that names each live API process (its ``pid`` label comes from the files).
SERVED_BY = "openai_frontend_api_server_responses"


def served_by_gauge(registry: CollectorRegistry, index: int, count: int) -> Gauge:
    """API responses (those naming a model: not probes, not scrapes) this API process
    gave, one series per live process (``liveall``: a process that exits takes its
    series with it), so ``/metrics`` shows which are up and how the load spreads."""
    gauge = Gauge(
        SERVED_BY,
        f"API responses given by each of the {count} API processes (--api-server-count).",
        ["index"],
        registry=registry,
        multiprocess_mode="liveall",
    )
    child = gauge.labels(str(index))
    child.set(0)  # present from the start, before its first response
    return child


def admission_gauges(registry: CollectorRegistry) -> tuple[Gauge, Gauge]:
    """The admission queue's gauges, summed over the live processes (each holds its
    share of the limits)."""
    waiting = Gauge(
        "openai_frontend_requests_waiting",
        "Requests queued for a slot.",
        registry=registry,
        multiprocess_mode="livesum",
    )
    admitted = Gauge(
        "openai_frontend_requests_admitted",
        "Sequences holding a slot (n per request).",
        registry=registry,
        multiprocess_mode="livesum",
    )
    return waiting, admitted


def render_multiprocess(beside: list) -> bytes:
    """Every process's metrics, the live processes' ``process_*`` sums, and ``beside``
    (collectors whose figures are the same in each process: a remote engine's)."""
    registry = CollectorRegistry()
    files = MultiProcessCollector(registry)
    registry.register(ProcessSums(files))
    for collector in beside:
        registry.register(collector)
    return generate_latest(registry)


class ProcessSums:
    """``process_cpu_seconds_total`` and ``process_resident_memory_bytes`` summed over
    the live API processes (those with a :data:`SERVED_BY` series), so the gateway's
    CPU per frame (``openai-frontend bench``) counts every process."""

    def __init__(self, files: MultiProcessCollector) -> None:
        self._files = files

    def collect(self) -> list[Metric]:
        cpu, rss = 0.0, 0.0
        for pid in self._live_pids():
            try:
                process = psutil.Process(pid)
                times = process.cpu_times()
                cpu += times.user + times.system
                rss += process.memory_info().rss
            except psutil.Error:  # exited since its files were read
                continue
        return [
            CounterMetricFamily(
                "process_cpu_seconds", "User and system CPU time of the API processes.", cpu
            ),
            GaugeMetricFamily(
                "process_resident_memory_bytes", "Resident memory of the API processes.", rss
            ),
        ]

    def _live_pids(self) -> set[int]:
        pids: set[int] = set()
        for family in self._files.collect():
            if family.name == SERVED_BY:
                pids.update(int(sample.labels["pid"]) for sample in family.samples)
        return pids


def forget_this_process() -> None:
    """At exit: this process's ``live*`` gauges leave the files (prometheus_client's
    clean-up for a process that stopped)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        mark_process_dead(os.getpid())


#: How often a process writes the gauges only it can compute.
REFRESH_S = 1.0


async def refresh_every(refresh: Callable[[], None], seconds: float = REFRESH_S) -> None:
    """Call ``refresh`` every ``seconds`` until cancelled (the lifespan's end)."""
    while True:
        refresh()
        await asyncio.sleep(seconds)
