"""What the agent CLI tests (tests/test_codex.py, tests/test_claude_code.py) share: the
CLIs from npm (the versions the Makefile pins into .tools/), a gateway on SYNTHETIC
WEIGHTS whose window fits their prompts, and the gateway's answers by status code.

The CLIs' first requests are 40-78 kB (10k-20k tokens of instructions and tools), past
the default model's 8k window. The gateway here serves SmolLM2-135M's weights and
tokenizer under a config whose window is stretched: past 8k positions its text is noise,
and nothing reads it. The tests assert the protocol (the CLI completes its turn, every
request a 200), never what the model says.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
from conftest import ROOT
from demo_adapters import ensure_adapter
from prometheus_client.parser import text_string_to_metric_families
from servers import Running, all_stopped, default_model_server, ours, wait_ready

from openai_frontend.default_model import MODEL_NAME, ensure_default_model

TOOLS_BIN = ROOT / ".tools" / "node_modules" / ".bin"


def stretched_window_model(folder: Path, window: int) -> Path:
    """SmolLM2-135M's files, linked, under a config.json whose window is ``window``
    (synthetic)."""
    source = ensure_default_model()
    folder.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if file.name != "config.json":
            (folder / file.name).symlink_to(file)
    config = json.loads((source / "config.json").read_text())
    config["max_position_embeddings"] = window
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def stretched_window_gateway(folder: Path, window: int, *flags: str) -> Iterator[Running]:
    """A ready gateway on the stretched-window model, under the default model's name
    (FLAGS added); stopped after, also when it never got ready."""
    model = stretched_window_model(folder / f"window-{window}", window)
    running = ours(model, folder / "server.log", "--served-model-name", MODEL_NAME, *flags)
    with all_stopped(running):
        wait_ready(running)
        yield running


def adapter_gateway(folder: Path, adapter: str, generation: dict, *flags: str) -> Iterator[Running]:
    """A ready gateway on the real default model (8k window) with the demo ``adapter``
    (trained first if not cached) and ``generation`` as its defaults (FLAGS added);
    stopped after."""
    with default_model_server(
        folder / "server.log",
        *("--override-generation-config", json.dumps(generation)),
        f"--lora={adapter}={ensure_adapter(adapter)}",
        *flags,
    ) as running:
        yield running


def run_cli(command: list[str], work: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """An agent CLI's non-interactive run in WORK: no stdin, output captured."""
    # A hang guard only, far above a turn's time on a loaded 2-core machine.
    return subprocess.run(
        command,
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def statuses(base_url: str, model: str = MODEL_NAME) -> dict[str, float]:
    """Responses the gateway gave for ``model``, by status code (from /metrics)."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base_url}/metrics").text):
        for sample in family.samples:
            ours_ = sample.labels.get("model") == model
            if sample.name == "openai_frontend_http_responses_total" and ours_:
                status = sample.labels["status"]
                counts[status] = counts.get(status, 0) + sample.value
    return counts
