"""How long the event loop was kept from running by this process's own work.

Every stream, health check and admission decision waits while the loop is busy (or
while another thread holds the GIL: C and Rust code such as ``json.loads`` or pydantic's
validation hold it for their whole call, so moving them to a thread does not free the
loop). A probe task sleeps for ``PROBE_INTERVAL_S`` and measures how late it wakes.

Only lateness the process's own CPU time can explain is counted: the lateness less the
time the loop's thread waited in the host's run queue, capped by the CPU time all of the
process's threads used meanwhile. Time the operating system gave to other processes (a
busy host, another engine) is not the frontend's doing and would make the figure depend
on the machine: without the run-queue term, a worker thread's legitimate CPU on the
other core let a busy host's delay count as ours. A stall of our own (the loop's thread
running, or waiting for a thread that holds the GIL) is fully counted on any CPU, which
is what ``openai_frontend_event_loop_lag_seconds`` reports and the tests check.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Histogram

#: How often the probe wakes: a stall is seen to within this, at ~50 wake-ups a second.
PROBE_INTERVAL_S = 0.02


def own_lateness(late_by: float, cpu_used: float, queued: float = 0.0) -> float:
    """The part of a wake-up's lateness that the process's own CPU time explains.

    ``queued``: how long the loop's thread meanwhile waited, runnable, for a CPU the
    host gave to others (its run-queue wait); that much of the lateness is the host's
    even when another of our threads used CPU at the same time, on another core."""
    return max(0.0, min(late_by - queued, cpu_used))


def run_queue_wait() -> float:
    """Seconds the calling thread has spent runnable but waiting for a CPU, from
    Linux's ``/proc/thread-self/schedstat``; 0 where the kernel does not say."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as schedstat:
            return int(schedstat.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


async def watch_loop_lag(histogram: Histogram, interval: float = PROBE_INTERVAL_S) -> None:
    """Observe the loop's own lateness at every wake-up, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        started, cpu_started, queued = loop.time(), time.process_time(), run_queue_wait()
        await asyncio.sleep(interval)
        late_by = loop.time() - started - interval
        cpu_used = time.process_time() - cpu_started
        histogram.observe(own_lateness(late_by, cpu_used, run_queue_wait() - queued))
