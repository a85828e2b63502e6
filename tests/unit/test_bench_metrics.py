"""The bench's arithmetic on hand-built timelines, checked against numbers worked by hand."""

from __future__ import annotations

import random

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

from openai_frontend.bench.load import arrival_gaps
from openai_frontend.bench.metrics import (
    RequestRecord,
    parse_slos,
    percentile,
    summarize,
)


def record(index, ttft, itl, output_tokens, ok=True, prompt_tokens=10, **extra):
    e2el = None if ttft is None else ttft + sum(itl)
    return RequestRecord(
        index=index,
        sent=0.0,
        ok=ok,
        ttft=ttft,
        itl=list(itl),
        e2el=e2el,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        **extra,
    )


def test_tpot_is_decode_time_over_tokens_after_the_first():
    r = record(0, ttft=0.5, itl=[0.1, 0.2, 0.3], output_tokens=4)
    assert r.e2el == pytest.approx(1.1)
    assert r.tpot == pytest.approx((1.1 - 0.5) / 3)


def test_tpot_is_undefined_for_one_token_or_failure():
    assert record(0, 0.5, [], output_tokens=1).tpot is None
    assert record(0, 0.5, [0.1], output_tokens=2, ok=False).tpot is None


def test_summary_of_two_requests_worked_by_hand():
    records = [
        record(0, ttft=0.100, itl=[0.010, 0.030], output_tokens=3),
        record(1, ttft=0.300, itl=[0.020], output_tokens=2),
    ]
    s = summarize(records, duration=2.0, slos={})
    assert (s["requests"], s["completed"], s["failed"]) == (2, 2, 0)
    assert s["output_tokens"] == 5
    assert s["output_throughput"] == pytest.approx(2.5)
    assert s["request_throughput"] == pytest.approx(1.0)
    assert s["total_token_throughput"] == pytest.approx((20 + 5) / 2)
    assert s["ttft_ms"]["mean"] == pytest.approx(200)
    assert s["ttft_ms"]["p50"] == pytest.approx(200)
    assert s["ttft_ms"]["p99"] == pytest.approx(100 + 200 * 0.99)
    assert s["itl_ms"]["p50"] == pytest.approx(20)
    assert s["itl_ms"]["max"] == pytest.approx(30)
    # TPOT: (0.04 / 2) and (0.02 / 1) -> 20 ms each.
    assert s["tpot_ms"]["mean"] == pytest.approx(20)
    assert s["e2el_ms"]["min"] == pytest.approx(140)
    assert s["goodput"] is None


def test_failures_are_counted_and_listed_not_averaged():
    records = [
        record(0, ttft=0.1, itl=[0.01], output_tokens=2),
        record(1, ttft=None, itl=[], output_tokens=0, ok=False, status=429, error="busy"),
        record(2, ttft=None, itl=[], output_tokens=0, ok=False, status=429, error="busy"),
        record(3, ttft=None, itl=[], output_tokens=0, ok=False, status=None, error="reset"),
    ]
    s = summarize(records, duration=1.0, slos={})
    assert (s["completed"], s["failed"]) == (1, 3)
    assert s["errors"] == [
        {"status": 429, "error": "busy", "count": 2},
        {"status": None, "error": "reset", "count": 1},
    ]
    assert s["ttft_ms"]["mean"] == pytest.approx(100)
    assert s["request_throughput"] == pytest.approx(1.0)


def test_goodput_counts_requests_meeting_every_slo():
    records = [
        record(0, ttft=0.1, itl=[0.02, 0.02], output_tokens=3),  # meets both
        record(1, ttft=0.3, itl=[0.02], output_tokens=2),  # TTFT too slow
        record(2, ttft=0.1, itl=[0.09], output_tokens=2),  # TPOT too slow
        record(3, ttft=0.1, itl=[], output_tokens=1),  # no TPOT to miss: meets
        record(4, ttft=None, itl=[], output_tokens=0, ok=False, error="x"),
    ]
    s = summarize(records, duration=2.0, slos=parse_slos(["ttft:200", "tpot:50"]))
    assert s["goodput"] == pytest.approx(2 / 2.0)
    assert s["slos_ms"] == {"ttft": pytest.approx(200), "tpot": pytest.approx(50)}


def test_token_count_mismatches_are_reported():
    records = [
        record(0, 0.1, [0.1], 2, output_tokens_usage=2, output_tokens_counted=2),
        record(1, 0.1, [0.1], 2, output_tokens_usage=2, output_tokens_counted=3),
        record(2, 0.1, [0.1], 2, output_tokens_usage=None, output_tokens_counted=3),
    ]
    assert summarize(records, 1.0, {})["token_count_mismatches"] == 1


def test_no_successful_request_gives_no_distributions():
    s = summarize([record(0, None, [], 0, ok=False, error="x")], duration=1.0, slos={})
    assert s["ttft_ms"] is None and s["itl_ms"] is None and s["output_throughput"] == 0


@pytest.mark.parametrize("bad", ["ttft", "ttft:", "speed:10", "ttft:fast"])
def test_bad_slos_are_refused(bad):
    with pytest.raises(ValueError, match="goodput SLO"):
        parse_slos([bad])


@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=200),
    st.sampled_from([0, 1, 50, 90, 99, 100]),
)
def test_percentile_matches_numpy(values, p):
    assert percentile(values, p) == pytest.approx(numpy.percentile(values, p))


def test_poisson_arrivals_have_the_asked_rate():
    gaps = arrival_gaps(rate=4.0, burstiness=1.0, rng=random.Random(1))
    sample = [next(gaps) for _ in range(20000)]
    assert numpy.mean(sample) == pytest.approx(0.25, rel=0.03)
    # Exponential gaps: the standard deviation equals the mean.
    assert numpy.std(sample) == pytest.approx(0.25, rel=0.05)


def test_burstier_arrivals_keep_the_rate_but_spread_more():
    gaps = arrival_gaps(rate=4.0, burstiness=0.25, rng=random.Random(1))
    sample = [next(gaps) for _ in range(20000)]
    assert numpy.mean(sample) == pytest.approx(0.25, rel=0.05)
    assert numpy.std(sample) > 0.4


def test_infinite_rate_sends_at_once():
    gaps = arrival_gaps(rate=float("inf"), burstiness=1.0, rng=random.Random(1))
    assert [next(gaps) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_terminal_table_shows_throughput_and_latency_statistics():
    from openai_frontend.bench.report import table

    records = [
        record(0, ttft=0.100, itl=[0.010, 0.030], output_tokens=3),
        record(1, ttft=0.300, itl=[0.020], output_tokens=2),
        record(2, ttft=None, itl=[], output_tokens=0, ok=False, status=500, error="boom"),
    ]
    summary = summarize(records, duration=2.0, slos={})
    run = {"concurrency": 4, "request_rate": "inf", "summary": summary, "server_metrics": []}
    text = table({"runs": [run]})
    assert "| 4 | inf | 2/3 | 1.00 | 2.5 | - | 2.0 |" in text
    assert "| 4 | TTFT | 200.0 | 200.0 | 280.0 | 298.0 |" in text
    assert "concurrency 4: 1 failed with status 500: boom" in text
