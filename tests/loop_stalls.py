"""Event-loop stalls as the server itself counts them (``/metrics``).

The loop that must not stall is the server's, so the server measures it: its probe
(``openai_frontend.loop_lag``) counts only lateness its own CPU time explains, so a busy
host does not make these checks flaky, and a stall of the server's own is seen on any
CPU. ``STALL_S`` is the bar of issue 23: no gap above 100 ms during a request.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

STALL_S = 0.1
LAG_METRIC = "openai_frontend_event_loop_lag_seconds"


def stalls(metrics_text: str) -> tuple[int, float]:
    """(probe wake-ups later than ``STALL_S``, the upper bound of the worst one's bucket)."""
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(metrics_text):
        if family.name == LAG_METRIC:
            buckets = [
                (float(s.labels["le"]), s.value)
                for s in family.samples
                if s.name.endswith("_bucket")
            ]
    assert buckets, f"{LAG_METRIC} is missing from /metrics"
    total = max(count for _, count in buckets)
    within = next(count for bound, count in buckets if bound == STALL_S)
    worst = min(bound for bound, count in buckets if count == total)
    return int(total - within), worst


def new_stalls(before: str, after: str) -> str | None:
    """None, or what stalled between two scrapes of ``/metrics``."""
    added = stalls(after)[0] - stalls(before)[0]
    if added == 0:
        return None
    return f"{added} stall(s) over {STALL_S} s; the worst up to {stalls(after)[1]} s"
