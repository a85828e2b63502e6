"""Prometheus endpoints scraped before and after a run, reported as deltas.

Counters and histogram sums/counts are reported as their change over the run; gauges
as the value after it. Parsing is prometheus-client's own text parser.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, tuple[tuple[str, str], ...]]
CUMULATIVE_TYPES = {"counter", "histogram", "summary"}


async def scrape(client: httpx.AsyncClient, url: str) -> dict[Sample, tuple[str, float]]:
    """Every sample of one endpoint: (name, labels) -> (metric type, value)."""
    response = await client.get(url)
    response.raise_for_status()
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name.endswith("_bucket") or sample.name.endswith("_created"):
                continue  # buckets are too many to list; _created is a timestamp
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = (family.type, sample.value)
    return samples


async def scrape_all(client: httpx.AsyncClient, urls: list[str]) -> dict[str, dict]:
    """Scrape several endpoints; one that fails is reported by its error, not fatal."""
    result: dict[str, dict] = {}
    for url in urls:
        try:
            result[url] = await scrape(client, url)
        except (httpx.HTTPError, ValueError) as exc:
            result[url] = {"error": f"{type(exc).__name__}: {exc}"}
    return result


def deltas(before: dict[str, dict], after: dict[str, dict]) -> list[dict]:
    """Rows of ``url, metric, labels, kind, value`` for whatever changed or is a gauge."""
    rows = []
    for url, samples in after.items():
        earlier = before.get(url, {})
        if "error" in samples or "error" in earlier:
            rows.append({"url": url, "error": samples.get("error") or earlier.get("error")})
            continue
        for (name, labels), (kind, value) in sorted(samples.items()):
            if kind in CUMULATIVE_TYPES:
                change = value - earlier.get((name, labels), (kind, 0.0))[1]
                if change:
                    rows.append(_row(url, name, labels, "delta", change))
            elif kind == "gauge":
                rows.append(_row(url, name, labels, "after", value))
    return rows


def cpu_us_per_frame(rows: list[dict], frames: int) -> dict[str, float]:
    """Each endpoint's own process CPU (``process_cpu_seconds_total``, user + system) over
    the level, per streamed frame the client received: the frontend's cost per frame when
    the server runs ``--engine synthetic``. Endpoints without the metric are left out."""
    if not frames:
        return {}
    return {
        row["url"]: row["value"] * 1e6 / frames
        for row in rows
        if row.get("metric") == "process_cpu_seconds_total" and row.get("kind") == "delta"
    }


def _row(url: str, name: str, labels: tuple, kind: str, value: float) -> dict:
    return {"url": url, "metric": name, "labels": dict(labels), "kind": kind, "value": value}
