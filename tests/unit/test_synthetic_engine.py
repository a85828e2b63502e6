"""``--engine synthetic`` (NOT a model) and ``openai-frontend bench``'s frontend figure:
the server's own process CPU per streamed frame, from its ``process_cpu_seconds_total``."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from openai_frontend.bench.server_metrics import cpu_us_per_frame
from openai_frontend.cli import engine_kwargs
from openai_frontend.config import ServerConfig
from openai_frontend.default_model import MODEL_NAME, default_model_dir, is_prepared

ROOT = Path(__file__).resolve().parents[2]


def test_cpu_per_frame_is_each_endpoints_process_cpu_over_the_frames() -> None:
    rows = [
        {"url": "a", "metric": "process_cpu_seconds_total", "kind": "delta", "value": 0.5},
        {"url": "a", "metric": "openai_frontend_x_total", "kind": "delta", "value": 9.0},
        {"url": "b", "metric": "process_cpu_seconds_total", "kind": "after", "value": 7.0},
        {"url": "c", "error": "ConnectError: refused"},
    ]
    assert cpu_us_per_frame(rows, 25_000) == {"a": pytest.approx(20.0)}
    assert cpu_us_per_frame(rows, 0) == {}


def test_the_synthetic_engine_takes_only_the_model_its_name_and_window() -> None:
    config = ServerConfig(model_path=Path("/m"), served_model_name="s", engine="synthetic")
    assert engine_kwargs(config, enable_lora=False) == {
        "model_path": Path("/m"),
        "served_model_name": "s",
        "max_model_len": None,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(
    not is_prepared(default_model_dir()),
    reason="the synthetic engine tokenizes with the default model's tokenizer (`make model`)",
)
def test_bench_reports_the_servers_cpu_per_frame_against_the_synthetic_engine(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "openai_frontend", "serve", "--engine", "synthetic"]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [*serve, "--port", str(port), "--log-level", "warning"], stdout=log, stderr=log, cwd=ROOT
    )
    try:
        _wait_ready(base, server, tmp_path / "server.log")
        assert httpx.get(f"{base}/v1/models").json()["data"][0]["id"] == MODEL_NAME
        export = tmp_path / "run.json"
        bench = [sys.executable, "-m", "openai_frontend", "bench", "--url", base]
        flags = ["--concurrency", "4", "--num-requests", "8", "--output-len", "16"]
        flags += ["--server-metrics", f"{base}/metrics", "--export", str(export)]
        done = subprocess.run(
            [*bench, *flags], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = json.loads(export.read_text())["runs"][0]["summary"]
    # Per stream: the role chunk, 16 one-token chunks, the finish chunk (and usage, if asked).
    assert summary["completed"] == 8
    assert summary["frames"] >= 8 * 18
    per_frame = summary["server_cpu_us_per_frame"][f"{base}/metrics"]
    assert per_frame > 0
    assert "µs per frame" in done.stdout


def _wait_ready(base: str, server: subprocess.Popen, log: Path) -> None:
    """Ready, or the server's log in the failure (no engine to load: start-up is imports)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/health/ready").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
