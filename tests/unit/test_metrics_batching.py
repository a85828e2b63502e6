"""Batched inter-token latencies land in the histogram exactly as one observe() each."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram

from openai_frontend.metrics import BatchedObservations

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for metric in histogram.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def test_a_batch_counts_each_bucket_and_the_sum_as_observe_does():
    registry = CollectorRegistry()
    observed = Histogram("observed", "one by one", ["model"], buckets=BOUNDS, registry=registry)
    batched = Histogram("batched", "in batches", ["model"], buckets=BOUNDS, registry=registry)
    rng = random.Random(7)
    # Values on the bounds themselves, between them, past the last one, and zero.
    values = [*BOUNDS, 0.0, 99.0, *(rng.uniform(0, 3) for _ in range(300))]
    batch = BatchedObservations(batched.labels("m"))
    for value in values:
        observed.labels("m").observe(value)
        batch.add(value)
    batch.flush()
    one_by_one = {
        (name.replace("observed", "batched"), le): v for (name, le), v in _samples(observed).items()
    }
    # The sum is added once, so it may differ in the last bits of its rounding.
    assert _samples(batched) == pytest.approx(one_by_one, rel=1e-12)
    assert one_by_one[("batched_count", "")] == len(values)


def test_observations_wait_for_a_full_batch_or_the_flush():
    histogram = Histogram("itl", "latency", ["model"], buckets=BOUNDS, registry=CollectorRegistry())
    batch = BatchedObservations(histogram.labels("m"))
    for _ in range(BatchedObservations.FLUSH_EVERY - 1):
        batch.add(0.001)
    assert _samples(histogram)[("itl_count", "")] == 0
    batch.add(0.001)
    assert _samples(histogram)[("itl_count", "")] == BatchedObservations.FLUSH_EVERY
    batch.add(0.001)
    batch.flush()
    assert _samples(histogram)[("itl_count", "")] == BatchedObservations.FLUSH_EVERY + 1
