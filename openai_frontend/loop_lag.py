"""How long the event loop was kept from running by this process's own work.

Every stream, health check and admission decision waits while the loop is busy (or
while another thread holds the GIL: C and Rust code such as ``json.loads`` or pydantic's
validation hold it for their whole call, so moving them to a thread does not free the
loop). A probe task sleeps for ``PROBE_INTERVAL_S`` and measures how late it wakes.

Only lateness the process's own CPU time can explain is counted: the lateness, capped
by the CPU time all of the process's threads used meanwhile. Time the operating system
gave to other processes (a busy host, another engine) is not the frontend's doing and
would make the figure depend on the machine; a stall of our own is fully counted on any
CPU, which is what ``openai_frontend_event_loop_lag_seconds`` reports and the tests
check.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Histogram

#: How often the probe wakes: a stall is seen to within this, at ~50 wake-ups a second.
PROBE_INTERVAL_S = 0.02


def own_lateness(late_by: float, cpu_used: float) -> float:
    """The part of a wake-up's lateness that the process's own CPU time explains."""
    return max(0.0, min(late_by, cpu_used))


async def watch_loop_lag(histogram: Histogram, interval: float = PROBE_INTERVAL_S) -> None:
    """Observe the loop's own lateness at every wake-up, until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        started, cpu_started = loop.time(), time.process_time()
        await asyncio.sleep(interval)
        late_by = loop.time() - started - interval
        histogram.observe(own_lateness(late_by, time.process_time() - cpu_started))
