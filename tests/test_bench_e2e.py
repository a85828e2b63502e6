"""`openai-frontend bench` end to end: a tiny run against the real test server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Server

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bench(server: Server, *args: str) -> subprocess.CompletedProcess:
    command = [
        *(sys.executable, "-m", "openai_frontend", "bench", "--url", server.base_url),
        *("--api-key", server.api_key, "--input-len", "32", "--output-len", "8"),
        *args,
    ]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_run(server: Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("bench")
    done = bench(
        server,
        *("--concurrency", "1,2", "--num-requests", "3", "--warmup", "1"),
        *("--goodput", "ttft:60000", "tpot:60000"),
        *("--server-metrics", server.url("/metrics")),
        *("--export", str(out / "run.json"), "--plot", str(out / "plots")),
        *("--report", f"markdown={out / 'report.md'}", "--report", f"html={out / 'report.html'}"),
    )
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_every_request_sent_is_accounted_for(tiny_run):
    out, _ = tiny_run
    result = json.loads((out / "run.json").read_text())
    assert [run["concurrency"] for run in result["runs"]] == [1, 2]
    for run in result["runs"]:
        summary, requests = run["summary"], run["requests"]
        assert summary["requests"] == len(requests) == 3
        assert summary["completed"] == 3 and summary["failed"] == 0
        # ignore_eos: every reply is exactly the 8 tokens asked, by the server's usage.
        assert [r["output_tokens_usage"] for r in requests] == [8, 8, 8]
        assert summary["output_tokens"] == 24
        assert summary["output_throughput"] == pytest.approx(24 / summary["duration_s"])
        # Generous SLOs: every request meets them, so goodput is the request rate.
        assert summary["goodput"] == pytest.approx(summary["request_throughput"])
        for r in requests:
            assert 0 < r["ttft"] < r["e2el"]
            assert 1 <= len(r["itl"]) <= 7  # one gap per content chunk after the first
            # The last content chunk arrives before the stream ends.
            assert r["e2el"] >= r["ttft"] + sum(r["itl"]) - 1e-6
        assert summary["ttft_ms"]["p50"] <= summary["e2el_ms"]["p50"]


def test_server_metrics_agree_with_the_client(tiny_run):
    out, _ = tiny_run
    for run in json.loads((out / "run.json").read_text())["runs"]:
        generated = [
            row["value"]
            for row in run["server_metrics"]
            if row.get("metric") == "openai_frontend_generation_tokens_total"
        ]
        # The warm-up request is outside the scrapes: the server counts what we counted.
        assert generated == [run["summary"]["output_tokens"]]


def test_reports_and_plots_are_written(tiny_run):
    out, stdout = tiny_run
    assert "| concurrency |" in stdout
    markdown = (out / "report.md").read_text()
    assert markdown.startswith("# Benchmark: ") and "| 2 | inf | 3 | 0 |" in markdown
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "<td>3</td>" in html
    for name in ("ttft", "itl", "throughput", "latency"):
        assert (out / "plots" / f"{name}.png").read_bytes().startswith(PNG_MAGIC)


def test_failures_are_counted_with_status_and_message(server: Server, tmp_path):
    done = bench(
        server,
        *("--num-requests", "2", "--warmup", "0"),
        *("--extra-body", '{"top_k": "many"}', "--export", str(tmp_path / "run.json")),
    )
    assert done.returncode == 1  # nothing completed
    summary = json.loads((tmp_path / "run.json").read_text())["runs"][0]["summary"]
    assert (summary["completed"], summary["failed"]) == (0, 2)
    [error] = summary["errors"]
    assert error["status"] == 400 and error["count"] == 2 and "top_k" in error["error"]
    assert "2 failed with status 400" in done.stdout


def test_an_adapter_through_extra_body_and_the_completions_endpoint(server: Server, tmp_path):
    done = bench(
        server,
        *("--endpoint", "completions", "--no-stream", "--num-requests", "2"),
        *("--extra-body", '{"model": "pirate", "temperature": 0}'),
        *("--export", str(tmp_path / "run.json")),
    )
    assert done.returncode == 0, done.stderr
    [run] = json.loads((tmp_path / "run.json").read_text())["runs"]
    assert run["summary"]["completed"] == 2
    assert all(r["output_tokens"] == 8 and r["itl"] == [] for r in run["requests"])


@pytest.mark.parametrize("endpoint", ["responses", "messages"])
def test_the_other_apis_stream_and_count_like_chat(server: Server, tmp_path, endpoint):
    done = bench(
        server,
        *("--endpoint", endpoint, "--output-len", "16", "--num-requests", "2"),
        *("--export", str(tmp_path / "run.json")),
    )
    assert done.returncode == 0, done.stderr
    [run] = json.loads((tmp_path / "run.json").read_text())["runs"]
    assert run["summary"]["completed"] == 2
    # ignore_eos: all 16 tokens come (the API's usage says so), as several text deltas.
    for record in run["requests"]:
        assert record["output_tokens"] == 16 and len(record["itl"]) > 0
        assert record["prompt_tokens"] > 32
