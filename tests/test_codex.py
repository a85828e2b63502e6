"""Codex (npm ``@openai/codex``, the version the Makefile pins into .tools/) runs
``codex exec`` against the gateway: a custom provider with ``wire_api = "responses"``,
in a CODEX_HOME of the test's own, with no network but the gateway.

Codex's first request is ~40 kB (~10k tokens: instructions, 8 function tools and a
``namespace`` of them), past the default model's 8k window. The gateway here serves
SYNTHETIC WEIGHTS for that: SmolLM2-135M's weights and tokenizer under a config whose
window is stretched to 16k. Past 8k positions its text is noise, and nothing here reads
it: the test asserts the protocol (Codex completes its turn, every request a 200).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import ROOT
from prometheus_client.parser import text_string_to_metric_families
from servers import Running, all_stopped, ours, wait_ready

from openai_frontend.default_model import MODEL_NAME, ensure_default_model

pytestmark = pytest.mark.engine

CODEX = ROOT / ".tools" / "node_modules" / ".bin" / "codex"
STRETCHED_WINDOW = 16384
#: Codex sends no output limit: the server's default cap keeps each reply short.
REPLY_CAP = 24

CONFIG = """\
model = "{model}"
model_provider = "gateway"
# No network but the gateway: no update check, no analytics; and no hosted web search,
# which the gateway cannot run (it refuses a web_search tool by name).
check_for_update_on_startup = false
web_search = "disabled"

[analytics]
enabled = false

[model_providers.gateway]
name = "openai-frontend"
base_url = "{base_url}/v1"
wire_api = "responses"
env_key = "OPENAI_FRONTEND_API_KEY"
request_max_retries = 0
stream_max_retries = 0
"""


def stretched_window_model(folder: Path) -> Path:
    """SmolLM2-135M's files, linked, under a config.json whose window is 16k (synthetic)."""
    source = ensure_default_model()
    folder.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if file.name != "config.json":
            (folder / file.name).symlink_to(file)
    config = json.loads((source / "config.json").read_text())
    config["max_position_embeddings"] = STRETCHED_WINDOW
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Running:
    if not CODEX.exists():
        pytest.fail(f"{CODEX} is missing: `make tools` installs the pinned Codex")
    model = stretched_window_model(tmp_path_factory.mktemp("synthetic") / "window-16k")
    log_path = tmp_path_factory.mktemp("codex-gateway") / "server.log"
    overrides = json.dumps({"max_tokens": REPLY_CAP, "temperature": 0})
    running = ours(
        model,
        log_path,
        *("--served-model-name", MODEL_NAME, "--response-store", "none"),
        *("--override-generation-config", overrides),
    )
    with all_stopped(running):
        wait_ready(running)
        yield running


def statuses(base_url: str) -> dict[str, float]:
    """Responses the gateway gave for the model, by status code (from /metrics)."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{base_url}/metrics").text):
        for sample in family.samples:
            ours_ = sample.labels.get("model") == MODEL_NAME
            if sample.name == "openai_frontend_http_responses_total" and ours_:
                status = sample.labels["status"]
                counts[status] = counts.get(status, 0) + sample.value
    return counts


def run_codex(gateway: Running, home: Path, prompt: str) -> subprocess.CompletedProcess:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(CONFIG.format(model=MODEL_NAME, base_url=gateway.base_url))
    work = home.parent / "work"
    work.mkdir(exist_ok=True)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("OPENAI", "CODEX"))
    }
    env |= {"CODEX_HOME": str(home), "OPENAI_FRONTEND_API_KEY": "unused", "NO_COLOR": "1"}
    command = [str(CODEX), "exec", "--skip-git-repo-check", "--sandbox", "read-only", prompt]
    # A hang guard only, far above a turn's time on a loaded 2-core machine.
    return subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def test_codex_exec_completes_a_turn_through_the_responses_api(gateway: Running, tmp_path):
    done = run_codex(gateway, tmp_path / "codex-home", "Say hello.")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "ERROR" not in output, output[-4000:]
    counts = statuses(gateway.base_url)
    assert counts.get("200", 0) >= 1, counts
    assert set(counts) == {"200"}, counts
