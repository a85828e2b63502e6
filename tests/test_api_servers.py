"""``--api-server-count 2`` with the synthetic engine (no model): two API processes on
one port, both answering, one ``/metrics`` over both, and SIGTERM stopping them all.

Which process takes a connection is the kernel's choice (SO_REUSEPORT hashes the
client's address and port), so the test opens fresh connections until each process has
answered at least once; only the hang guard bounds it, never a count of tries.
"""

from __future__ import annotations

import contextlib
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
from servers import Running, default_model_server

from openai_frontend.default_model import MODEL_NAME

#: A hang guard for the loops below, not a timing the test depends on.
HANG_GUARD_S = 180
SERVED_BY = re.compile(r'openai_frontend_api_server_responses\{index="(\d)",pid="(\d+)"\} (\S+)')
BODY = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _served_by(base_url: str) -> dict[int, tuple[int, float]]:
    """index -> (pid, responses) from any process's /metrics."""
    text = httpx.get(base_url + "/metrics", timeout=10).text
    return {int(i): (int(pid), float(n)) for i, pid, n in SERVED_BY.findall(text)}


def _until(condition, what: str):
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"hang guard: {what}")


def _chat_on_a_fresh_connection(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:  # a new client port
        answer = client.post("/v1/chat/completions", json=BODY)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]


@contextlib.contextmanager
def two_api_processes(tmp_path: Path, *flags: str) -> Iterator[Running]:
    """The default model's server with two API processes, ready and both registered."""
    flags = (*flags, "--api-server-count", "2", "--drain-timeout", "2")
    store = ("--response-store", str(tmp_path / "r.sqlite3"))
    with default_model_server(tmp_path / "server.log", *flags, *store) as running:
        _until(lambda: len(_served_by(running.base_url)) == 2, "two API processes")
        yield running


def test_two_api_processes_share_a_port_and_stop_together(tmp_path):
    flags = ("--engine", "synthetic", "--max-concurrent-requests", "3")
    with two_api_processes(tmp_path, *flags) as running:

        def each_answered() -> dict | None:
            _chat_on_a_fresh_connection(running.base_url)
            counts = _served_by(running.base_url)
            return counts if all(n > 0 for _, n in counts.values()) else None

        counts = _until(each_answered, "a chat answered by each API process")
        pids = {pid for pid, _ in counts.values()}
        supervisor = psutil.Process(running.process.pid)
        children = {child.pid for child in supervisor.children()}
        assert len(pids) == 2 and pids <= children  # two distinct API processes

        metrics = httpx.get(running.base_url + "/metrics", timeout=10).text
        # Counters are summed over both processes: every chat above is counted once.
        chats = re.search(
            rf'openai_frontend_http_responses_total\{{model="{MODEL_NAME}",status="200"\}} (\S+)',
            metrics,
        )
        assert chats and float(chats.group(1)) >= 2
        cpu = re.search(r"^process_cpu_seconds_total (\S+)$", metrics, re.M)
        assert cpu and float(cpu.group(1)) > 0

        running.process.send_signal(signal.SIGTERM)
        assert running.process.wait(timeout=HANG_GUARD_S) == 0
        for pid in pids:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
