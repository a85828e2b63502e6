"""Codex (npm ``@openai/codex``, the version the Makefile pins into .tools/) runs
``codex exec`` against the gateway: a custom provider with ``wire_api = "responses"``,
in a CODEX_HOME of the test's own, with no network but the gateway.

Codex's first request is ~40 kB (~10k tokens: instructions, 8 function tools and a
``namespace`` of them), past the default model's 8k window: the gateway serves
SYNTHETIC WEIGHTS with a 16k window (tests/agent_clients.py), and the test asserts the
protocol (Codex completes its turn, every request a 200).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_clients import TOOLS_BIN, statuses, stretched_window_gateway
from servers import Running

from openai_frontend.default_model import MODEL_NAME

pytestmark = pytest.mark.engine

CODEX = TOOLS_BIN / "codex"
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


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if not CODEX.exists():
        pytest.fail(f"{CODEX} is missing: `make tools` installs the pinned Codex")
    overrides = json.dumps({"max_tokens": REPLY_CAP, "temperature": 0})
    yield from stretched_window_gateway(
        tmp_path_factory.mktemp("codex-gateway"),
        STRETCHED_WINDOW,
        *("--response-store", "none", "--override-generation-config", overrides),
    )


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
