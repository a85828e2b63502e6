"""A run's results: the terminal table, the JSON export, Jinja2 reports and PNG plots."""

from __future__ import annotations

from pathlib import Path

import orjson
from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

BUNDLED_TEMPLATES = Path(__file__).parent / "templates"
BUNDLED = {"markdown": "report.md.j2", "html": "report.html.j2"}
HIGHLIGHTED_METRIC_WORDS = ("token", "request")


def _ms(stats: dict | None, key: str) -> str:
    return "-" if stats is None else f"{stats[key]:.1f}"


def table(result: dict) -> str:
    """The summary as Markdown tables (throughput, then latency), readable on a terminal."""
    lines = [
        "| concurrency | rate | ok/sent | req/s | out tok/s | goodput req/s | duration s |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        s = run["summary"]
        goodput = "-" if s["goodput"] is None else f"{s['goodput']:.2f}"
        lines.append(
            f"| {run['concurrency']} | {run['request_rate']} | {s['completed']}/{s['requests']} "
            f"| {s['request_throughput']:.2f} | {s['output_throughput']:.1f} | {goodput} "
            f"| {s['duration_s']:.1f} |"
        )
    lines += [
        "",
        "| concurrency | metric (ms) | mean | p50 | p90 | p99 |",
        "|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"):
            stats = run["summary"][key]
            cells = " | ".join(_ms(stats, k) for k in ("mean", "p50", "p90", "p99"))
            lines.append(f"| {run['concurrency']} | {key[:-3].upper()} | {cells} |")
    for run in result["runs"]:
        for url, value in run["summary"].get("server_cpu_us_per_frame", {}).items():
            lines.append(
                f"concurrency {run['concurrency']}: {url} process CPU {value:.1f} µs per frame"
                f" ({run['summary']['frames']} frames)"
            )
    for run in result["runs"]:
        lines.extend(_errors(run))
        lines.extend(_server_highlights(run))
    return "\n".join(lines)


def _errors(run: dict) -> list[str]:
    summary = run["summary"]
    lines = [
        f"concurrency {run['concurrency']}: {e['count']} failed with status {e['status']}: "
        f"{e['error']}"
        for e in summary["errors"]
    ]
    if summary["token_count_mismatches"]:
        lines.append(
            f"concurrency {run['concurrency']}: {summary['token_count_mismatches']} replies whose"
            " usage.completion_tokens differs from our re-tokenization of the text"
        )
    return lines


def _server_highlights(run: dict) -> list[str]:
    rows = [
        r
        for r in run["server_metrics"]
        if r.get("kind") == "delta" and any(w in r["metric"] for w in HIGHLIGHTED_METRIC_WORDS)
    ]
    if not rows:
        return []
    lines = [f"server metrics over concurrency {run['concurrency']} (delta):"]
    for r in rows[:12]:
        labels = ",".join(f"{k}={v}" for k, v in r["labels"].items())
        lines.append(f"  {r['metric']}{{{labels}}} {r['value']:g}")
    if len(rows) > 12:
        lines.append(f"  ... {len(rows) - 12} more in the JSON export")
    return lines


def export_json(result: dict, path: Path) -> None:
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


def render(result: dict, template: str) -> str:
    """Render through a bundled template ("markdown", "html") or a user's .j2 file."""
    if template in BUNDLED:
        folder, name = BUNDLED_TEMPLATES, BUNDLED[template]
    else:
        path = Path(template)
        if not path.is_file():
            raise ValueError(
                f"report template '{template}' is neither a file nor one of {sorted(BUNDLED)}"
            )
        folder, name = path.parent, path.name
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(folder)),
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(name).render(result=result, runs=result["runs"])


def plot(result: dict, folder: Path) -> list[Path]:
    """TTFT and ITL distributions per run, and throughput and latency by concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    folder.mkdir(parents=True, exist_ok=True)
    runs = result["runs"]
    written = []
    for key, title in (("ttft", "Time to first token"), ("itl", "Inter-token latency")):
        figure, axes = pyplot.subplots(figsize=(7, 4))
        for run in runs:
            values = _per_request_ms(run, key)
            if values:
                axes.hist(values, bins=40, histtype="step", label=f"c={run['concurrency']}")
        axes.set(title=title, xlabel="ms", ylabel="count")
        if axes.get_legend_handles_labels()[0]:
            axes.legend()
        written.append(_save(figure, folder / f"{key}.png", pyplot))
    levels = [run["concurrency"] for run in runs]
    figure, axes = pyplot.subplots(figsize=(7, 4))
    axes.plot(levels, [r["summary"]["output_throughput"] for r in runs], marker="o")
    axes.set(title="Output throughput", xlabel="concurrency", ylabel="tokens/s", xscale="log")
    written.append(_save(figure, folder / "throughput.png", pyplot))
    figure, axes = pyplot.subplots(figsize=(7, 4))
    for metric, stat in (
        ("ttft_ms", "p50"),
        ("ttft_ms", "p99"),
        ("tpot_ms", "p50"),
        ("e2el_ms", "p50"),
    ):
        values = [(r["summary"][metric] or {}).get(stat) for r in runs]
        axes.plot(levels, values, marker="o", label=f"{metric[:-3]} {stat}")
    axes.set(title="Latency", xlabel="concurrency", ylabel="ms", xscale="log", yscale="log")
    axes.legend()
    written.append(_save(figure, folder / "latency.png", pyplot))
    return written


def _per_request_ms(run: dict, key: str) -> list[float]:
    if key == "itl":
        return [gap * 1000 for r in run["requests"] if r["ok"] for gap in r["itl"]]
    return [r[key] * 1000 for r in run["requests"] if r["ok"] and r[key] is not None]


def _save(figure, path: Path, pyplot) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path
