"""Codex (npm ``@openai/codex``, the version the Makefile pins into .tools/) runs
``codex exec`` against the gateway: a custom provider with ``wire_api = "responses"``,
in a CODEX_HOME of the test's own, with no network but the gateway.

Codex's first request is ~40 kB (~10k tokens: instructions, 8 function tools and a
``namespace`` of them), past the default model's 8k window: the gateway serves
SYNTHETIC WEIGHTS with a 16k window (tests/agent_clients.py), and the test asserts the
protocol (Codex completes its turn, every request a 200).

The tool round trip runs on the real default model (its 8k window): Codex's own settings
shrink its prompt to ~2.1k tokens (``model_instructions_file``, sub-agents and goals off),
and the ``exec-agent`` demo adapter (scripts/agent_conversations.py), trained on the
prompts the gateway renders for these very requests, calls ``exec_command`` with the
command the user names, then ends the turn with a sentence once the output is back. The
test reads ``codex exec --json``'s events: the command Codex ran, then the reply.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_clients import TOOLS_BIN, adapter_gateway, run_cli, statuses, stretched_window_gateway
from servers import Running

from openai_frontend.default_model import MODEL_NAME

pytestmark = pytest.mark.engine

CODEX = TOOLS_BIN / "codex"
STRETCHED_WINDOW = 16384
#: Codex sends no output limit: the server's default cap keeps each reply short.
REPLY_CAP = 24
TOOL_ADAPTER = "exec-agent"
#: Room for a call and the sentence after its output, not for a runaway reply.
TOOL_REPLY_CAP = 64

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

INSTRUCTIONS = "You are a coding agent. Use the exec_command tool to run commands.\n"


def shrink_flags(instructions: Path) -> tuple[str, ...]:
    """Codex's own settings that shrink its prompt to fit the default model's 8k window:
    a one-line instructions file instead of its own ~7k tokens, no sub-agent or goal
    tools."""
    settings = [f'model_instructions_file="{instructions}"', "agents.enabled=false"]
    return tuple(
        flag for setting in [*settings, "features.goals=false"] for flag in ("-c", setting)
    )


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


@pytest.fixture(scope="module")
def tool_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The real default model (8k window), greedy, with the ``exec-agent`` adapter."""
    if not CODEX.exists():
        pytest.fail(f"{CODEX} is missing: `make tools` installs the pinned Codex")
    folder = tmp_path_factory.mktemp("codex-tool-gateway")
    generation = {"max_tokens": TOOL_REPLY_CAP, "temperature": 0}
    yield from adapter_gateway(folder, TOOL_ADAPTER, generation, "--response-store", "none")


def run_codex(
    gateway: Running, home: Path, prompt: str, *flags: str, model: str = MODEL_NAME
) -> subprocess.CompletedProcess:
    """``codex exec FLAGS PROMPT`` on MODEL, in HOME/../work."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(CONFIG.format(model=model, base_url=gateway.base_url))
    work = home.parent / "work"
    work.mkdir(exist_ok=True)
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("OPENAI", "CODEX"))
    }
    env |= {"CODEX_HOME": str(home), "OPENAI_FRONTEND_API_KEY": "unused", "NO_COLOR": "1"}
    # Codex writes the shell and time zone into its prompt: those the adapter was taught.
    env |= {"SHELL": "/bin/bash", "TZ": "Etc/UTC"}
    command = [str(CODEX), "exec", "--skip-git-repo-check", "--sandbox", "read-only", *flags]
    return run_cli([*command, prompt], work, env)


def test_codex_exec_completes_a_turn_through_the_responses_api(gateway: Running, tmp_path):
    done = run_codex(gateway, tmp_path / "codex-home", "Say hello.")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "ERROR" not in output, output[-4000:]
    counts = statuses(gateway.base_url)
    assert counts.get("200", 0) >= 1, counts
    assert set(counts) == {"200"}, counts


def test_codex_exec_runs_an_exec_command_round_trip(tool_gateway: Running, tmp_path):
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "instructions.md").write_text(INSTRUCTIONS)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("buy milk\n")
    shrink = shrink_flags(home / "instructions.md")
    done = run_codex(tool_gateway, home, "Run ls.", "--json", *shrink, model=TOOL_ADAPTER)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    items = [event["item"] for event in events if event["type"] == "item.completed"]
    kinds = [item["type"] for item in items if item["type"] != "error"]
    assert kinds == ["command_execution", "agent_message"], items  # the call, then the reply
    ran = items[[item["type"] for item in items].index("command_execution")]
    assert ran["command"].endswith(" ls") and ran["exit_code"] == 0, ran
    assert "notes.txt" in ran["aggregated_output"], ran  # Codex really ran it
    assert events[-1]["type"] == "turn.completed", events[-1]
    counts = statuses(tool_gateway.base_url, TOOL_ADAPTER)
    assert counts.get("200", 0) >= 2, counts
    assert set(counts) == {"200"}, counts
