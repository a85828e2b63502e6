"""Claude Code (npm ``@anthropic-ai/claude-code``, the version the Makefile pins into
.tools/) runs ``claude -p`` against the gateway's Messages API: ``ANTHROPIC_BASE_URL``
and ``ANTHROPIC_API_KEY``, a HOME of the test's own, no telemetry, no update check, no
traffic but the gateway.

Its first request is ~49 kB (~12k tokens: system blocks with ``cache_control``, 12 tools
and a deferred one, a mid-conversation ``system`` turn, ``thinking: adaptive``,
``context_management``, ``output_config.effort``, ``metadata.user_id``, the
``anthropic-beta`` header), past the default model's 8k window: the gateway serves
SYNTHETIC WEIGHTS with a 16k window (tests/agent_clients.py), and the test asserts the
protocol (Claude Code completes its turn, every request a 200), never the text.

The turn runs on the ``pirate`` demo adapter, taught to answer with one short phrase:
the base model, greedy, runs to ``max_tokens`` on this prompt, and Claude Code continues
a reply cut there three times, then fails the turn. The adapter ends its reply, so the
turn is one request.

The tool round trip runs on the real default model (its 8k window): Claude Code's own
flags shrink its prompt to ~1.7k tokens (``--tools Bash``, ``--system-prompt``), and the
``bash-agent`` demo adapter (scripts/agent_conversations.py), trained on the prompts the
gateway renders for these very requests, calls ``Bash`` with the command the user names,
then ends the turn with a sentence once the result is back. The test reads Claude Code's
transcript: the call, Claude Code running it, the result going back, the reply after it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_clients import TOOLS_BIN, adapter_gateway, run_cli, statuses, stretched_window_gateway
from demo_adapters import ensure_adapter
from servers import Running

pytestmark = pytest.mark.engine

CLAUDE = TOOLS_BIN / "claude"
ADAPTER = "pirate"
TOOL_ADAPTER = "bash-agent"
#: Claude Code's prompt shrunk by its own flags to fit the default model's 8k window:
#: one tool, and a one-line system prompt instead of its own ~10k tokens.
SHRUNK = (
    "--tools",
    "Bash",
    "--allowedTools",
    "Bash",
    "--system-prompt",
    "You are a coding agent. Use the Bash tool to run commands.",
)
STRETCHED_WINDOW = 16384
#: Claude Code asks for 32000 output tokens unless told; this caps each reply (it then
#: continues a reply cut by max_tokens a few times, each a short request on a cached
#: prompt).
MAX_OUTPUT_TOKENS = 256
#: No network but the gateway: no telemetry, error reports, update checks or other
#: "nonessential" calls.
QUIET = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "NO_COLOR": "1",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if not CLAUDE.exists():
        pytest.fail(f"{CLAUDE} is missing: `make tools` installs the pinned Claude Code")
    yield from stretched_window_gateway(
        tmp_path_factory.mktemp("claude-code-gateway"),
        STRETCHED_WINDOW,
        *("--override-generation-config", json.dumps({"temperature": 0})),
        f"--lora={ADAPTER}={ensure_adapter(ADAPTER)}",
    )


@pytest.fixture(scope="module")
def tool_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The real default model (8k window), greedy, with the ``bash-agent`` adapter."""
    if not CLAUDE.exists():
        pytest.fail(f"{CLAUDE} is missing: `make tools` installs the pinned Claude Code")
    folder = tmp_path_factory.mktemp("claude-code-tool-gateway")
    yield from adapter_gateway(folder, TOOL_ADAPTER, {"temperature": 0})


def run_claude(
    gateway: Running,
    home: Path,
    prompt: str,
    model: str = ADAPTER,
    flags: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    home.mkdir(parents=True, exist_ok=True)
    work = home.parent / "work"
    work.mkdir(exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANTHROPIC", "CLAUDE", "OPENAI"))
    }
    env |= {
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.base_url,
        "ANTHROPIC_API_KEY": "unused",
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(MAX_OUTPUT_TOKENS),
        # Claude Code writes the shell into its prompt: the one the adapter was taught.
        "SHELL": "/bin/bash",
        **QUIET,
    }
    command = [str(CLAUDE), "-p", *flags, "--output-format", "json", "--model", model, prompt]
    return run_cli(command, work, env)


def test_claude_p_completes_a_turn_through_the_messages_api(gateway: Running, tmp_path):
    done = run_claude(gateway, tmp_path / "home", "Say hello.")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    result = json.loads(done.stdout)
    assert (result["type"], result["subtype"], result["is_error"]) == ("result", "success", False)
    counts = statuses(gateway.base_url, ADAPTER)
    assert counts.get("200", 0) >= 1, counts
    assert set(counts) == {"200"}, counts


def transcript(home: Path) -> list[dict]:
    """Claude Code's record of the session: one JSON object a line, every message."""
    (path,) = (home / ".claude" / "projects").glob("*/*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def blocks(entries: list[dict], role: str) -> list[dict]:
    """The content blocks of the transcript's ``role`` messages, in order."""
    found = []
    for entry in entries:
        message = entry.get("message") or {}
        if message.get("role") == role and isinstance(message.get("content"), list):
            found += message["content"]
    return found


def test_claude_p_runs_a_bash_tool_round_trip(tool_gateway: Running, tmp_path):
    home = tmp_path / "home"
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("buy milk\n")
    done = run_claude(tool_gateway, home, "Run ls.", TOOL_ADAPTER, SHRUNK)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    result = json.loads(done.stdout)
    assert (result["subtype"], result["is_error"]) == ("success", False), result
    assert result["num_turns"] == 2, result  # the call, then the reply after its result
    entries = transcript(home)
    (call,) = [b for b in blocks(entries, "assistant") if b["type"] == "tool_use"]
    assert (call["name"], call["input"]["command"]) == ("Bash", "ls"), call
    (ran,) = [b for b in blocks(entries, "user") if b["type"] == "tool_result"]
    assert ran["tool_use_id"] == call["id"] and not ran.get("is_error"), ran
    assert "notes.txt" in json.dumps(ran["content"]), ran  # Claude Code really ran it
    texts = [b["text"] for b in blocks(entries, "assistant") if b["type"] == "text"]
    assert texts and texts[-1].strip() == result["result"].strip(), (texts, result)
    counts = statuses(tool_gateway.base_url, TOOL_ADAPTER)
    assert counts.get("200", 0) >= 2, counts
    assert set(counts) == {"200"}, counts
