"""scripts/soak.py end to end, tiny, against its synthetic engine: keeps the script working.

The figures themselves come from full runs (README, "Performance"); this only checks that
a run sends the whole mix, reads the server's RSS at every checkpoint and reports the
growth it claims to.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from openai_frontend.default_model import default_model_dir, is_prepared

ROOT = Path(__file__).resolve().parents[2]
JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")

pytestmark = pytest.mark.skipif(
    not is_prepared(default_model_dir()),
    reason="the synthetic engine tokenizes with the default model's tokenizer (`make model`)",
)


def soak(tmp_path: Path, *args: str) -> tuple[dict, str]:
    report = tmp_path / "soak.json"
    command = [sys.executable, "scripts/soak.py", "--json", str(report), *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(report.read_text()), done.stdout


def test_a_tiny_soak_sends_the_whole_mix_and_reports_the_growth(tmp_path):
    result, printed = soak(tmp_path, "--requests", "120", "--checkpoints", "4", "--max-tokens", "4")
    tally = result["tally"]
    assert result["requests"] == result["requests_planned"] == 120
    assert result["allocator"] == "glibc"
    assert sum(tally["by_api"].values()) == 120
    assert set(tally["by_api"]) == {"bad", "chat", "completions", "responses", "messages"}
    assert tally["client_errors"] == tally["by_api"]["bad"]
    assert tally["streamed"] > tally["disconnected"] > 0
    assert tally["not_streamed"] > tally["stored"] > 0
    assert tally["unexpected"] == []
    points = result["checkpoints"]
    assert [point["requests"] for point in points] == [0, 30, 60, 90, 120]
    assert all(point["rss_mib"] > 10 for point in points)
    assert result["last_half_from_request"] == 60
    assert result["rss_half_mib"] == pytest.approx(points[2]["rss_mib"], abs=0.05)
    assert result["rss_end_mib"] == pytest.approx(points[-1]["rss_mib"], abs=0.05)
    grown = points[-1]["rss_mib"] - points[2]["rss_mib"]
    assert result["growth_last_half_mib"] == pytest.approx(grown, abs=0.01)
    assert result["growth_last_half_pct"] == pytest.approx(
        100 * grown / points[2]["rss_mib"], abs=0.01
    )
    assert result["rss_peak_mib"] > 10
    assert "| growth, last half (from request 60) |" in printed


def test_sigterm_ends_the_run_early_with_a_report_of_what_finished(tmp_path):
    report = tmp_path / "soak.json"
    command = [sys.executable, "scripts/soak.py", "--json", str(report), "--checkpoints", "1000"]
    run = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert b"requests, RSS" in run.stderr.readline()  # the first checkpoint is in
        run.terminate()
        stdout, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 0, stderr.decode()
    result = json.loads(report.read_text())
    assert 0 < result["requests"] < result["requests_planned"] == 20_000
    assert result["checkpoints"][-1]["requests"] == result["requests"]
    assert result["tally"]["unexpected"] == []
    assert b"of 20000 planned" in stdout


@pytest.mark.skipif(not JEMALLOC.is_file(), reason="needs Debian's libjemalloc2")
def test_jemalloc_is_really_mapped_into_the_server(tmp_path):
    result, _ = soak(tmp_path, "--malloc", "jemalloc", "--requests", "8", "--checkpoints", "2")
    assert result["allocator"] == "jemalloc"
    assert result["tally"]["unexpected"] == []
