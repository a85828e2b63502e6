"""The loop-lag probe counts the server's own stalls, not the host's."""

from __future__ import annotations

import asyncio
import time

from loop_stalls import stalls
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from openai_frontend.loop_lag import own_lateness, run_queue_wait, watch_loop_lag


def test_lateness_is_capped_by_the_cpu_time_the_process_used():
    assert own_lateness(0.5, 0.6) == 0.5  # our own work kept the loop: all of it counts
    assert own_lateness(0.5, 0.01) == 0.01  # the host ran other processes meanwhile
    assert own_lateness(-0.001, 0.0) == 0.0  # woke early


def test_time_waiting_for_a_cpu_is_the_hosts():
    # Another thread of ours used CPU meanwhile (on another core), but the loop's own
    # thread sat in the run queue for most of the lateness: only the rest is ours.
    assert abs(own_lateness(0.3, 0.3, queued=0.25) - 0.05) < 1e-9
    assert own_lateness(0.3, 0.3, queued=0.4) == 0.0


def test_the_run_queue_wait_is_read_for_this_thread():
    before = run_queue_wait()
    assert before >= 0.0
    assert run_queue_wait() >= before  # a counter: it never goes back


def test_a_blocking_call_on_the_loop_is_one_stall_of_its_length():
    registry = CollectorRegistry()
    histogram = Histogram(
        "openai_frontend_event_loop_lag_seconds",
        "",
        registry=registry,
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
    )

    async def main() -> None:
        probe = asyncio.create_task(watch_loop_lag(histogram, interval=0.005))
        await asyncio.sleep(0.05)
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:  # CPU work on the loop, as a stall is
            pass
        await asyncio.sleep(0.05)
        probe.cancel()

    asyncio.run(main())
    count, worst = stalls(generate_latest(registry).decode())
    assert count == 1 and worst == 0.5
