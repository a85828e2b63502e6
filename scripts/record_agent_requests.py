"""Record scripts/agent_requests/ again: one tool round trip of each agent CLI (the
versions `make tools` pins), run with the tests' shrunk prompts, at the gateway.

No model runs: the gateway (``--engine remote``) renders and tokenizes as always, and its
upstream here is a script that answers the first request with the hermes call and the
second with the closing sentence. A recording proxy in front of the gateway keeps each
request body; the last one (the round trip's second request) is written with the
run-specific parts as ``{{NAME}}`` placeholders (scripts/agent_conversations.py fills
them). Takes about a minute.

    .venv/bin/python scripts/record_agent_requests.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from agent_conversations import DONE, REQUESTS  # noqa: E402
from demo_adapters import AGENTS, ensure_adapter  # noqa: E402
from servers import all_stopped, ours, wait_ready  # noqa: E402
from test_claude_code import MAX_OUTPUT_TOKENS, QUIET, SHRUNK  # noqa: E402
from test_codex import CONFIG, INSTRUCTIONS, shrink_flags  # noqa: E402

from openai_frontend.default_model import MODEL_NAME, ensure_default_model  # noqa: E402

BIN = ROOT / ".tools" / "node_modules" / ".bin"
#: What the first request is answered with, by the tool named in the prompt.
CALLS = {
    "exec_command": '{"name": "exec_command", "arguments": {"cmd": "ls"}}',
    "Bash": '{"name": "Bash", "arguments": {"command": "ls"}}',
}


class Upstream(BaseHTTPRequestHandler):
    """A scripted OpenAI-compatible upstream: the call first, then the closing reply."""

    def do_GET(self) -> None:
        names = [MODEL_NAME, *AGENTS]
        self._send({"data": [{"id": name, "max_model_len": 8192} for name in names]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        tokens = body["prompt"]
        text = self.server.tokenizer.decode(tokens)  # type: ignore[attr-defined]
        tool = "exec_command" if '"name": "exec_command"' in text else "Bash"
        answer = DONE if "<tool_response>" in text else f"<tool_call>\n{CALLS[tool]}\n</tool_call>"
        frames = [
            {"choices": [{"index": 0, "text": answer, "finish_reason": None}]},
            {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": len(tokens), "completion_tokens": 1}},
        ]
        data = "".join(f"data: {json.dumps(frame)}\n\n" for frame in frames) + "data: [DONE]\n\n"
        self._send(None, data.encode(), "text/event-stream")

    def _send(self, obj: object, raw: bytes = b"", kind: str = "application/json") -> None:
        raw = raw or json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


class Recorder(BaseHTTPRequestHandler):
    """Passes each request to the gateway, keeping its body."""

    def do_GET(self) -> None:
        self._pass("GET")

    def do_POST(self) -> None:
        self._pass("POST")

    def _pass(self, method: str) -> None:
        size = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(size) if size else None
        if raw:
            self.server.bodies.append(json.loads(raw))  # type: ignore[attr-defined]
        skip = {"host", "content-length", "accept-encoding"}
        headers = {key: value for key, value in self.headers.items() if key.lower() not in skip}
        url = self.server.gateway + self.path  # type: ignore[attr-defined]
        answer = httpx.request(method, url, content=raw, headers=headers, timeout=120)
        self.send_response(answer.status_code)
        self.send_header("content-type", answer.headers.get("content-type", "text/plain"))
        self.send_header("content-length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler], **attributes: object) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_claude(url: str, folder: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANTHROPIC")}
    env |= {"HOME": str(folder / "home"), "ANTHROPIC_BASE_URL": url}
    env |= {"ANTHROPIC_API_KEY": "unused", "CLAUDE_CODE_MAX_OUTPUT_TOKENS": str(MAX_OUTPUT_TOKENS)}
    env |= QUIET
    command = [str(BIN / "claude"), "-p", *SHRUNK, "--output-format", "json"]
    command += ["--model", "bash-agent", "Run ls."]
    done = subprocess.run(command, cwd=folder / "work", env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"claude failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")


def run_codex(url: str, folder: Path) -> None:
    home = folder / "codex-home"
    home.mkdir()
    (home / "instructions.md").write_text(INSTRUCTIONS)
    (home / "config.toml").write_text(CONFIG.format(model="exec-agent", base_url=url))
    env = {key: value for key, value in os.environ.items() if not key.startswith("CODEX")}
    env |= {"CODEX_HOME": str(home), "HOME": str(folder), "OPENAI_FRONTEND_API_KEY": "unused"}
    command = [str(BIN / "codex"), "exec", "--skip-git-repo-check", "--sandbox", "read-only"]
    command += [*shrink_flags(home / "instructions.md"), "Run ls."]
    done = subprocess.run(
        command, cwd=folder / "work", env=env, stdin=subprocess.DEVNULL, capture_output=True
    )
    if done.returncode:
        raise SystemExit(f"codex failed: {done.stdout[-2000:]!r} {done.stderr[-2000:]!r}")


def placeholders(body: dict, values: list[tuple[str, str]]) -> str:
    """The body as indented JSON, each (VALUE, NAME) of VALUES as ``{{NAME}}``: values
    distinct enough to replace wherever they are (paths, the date, the build tag)."""
    text = json.dumps(body, indent=1, ensure_ascii=False)
    for value, name in values:
        escaped = json.dumps(value, ensure_ascii=False)[1:-1]
        if escaped not in text:
            raise SystemExit(f"{name}: {value!r} is not in the recorded request")
        text = text.replace(escaped, "{{" + name + "}}")
    return text + "\n"


def main() -> None:
    from transformers import AutoTokenizer

    model = ensure_default_model()
    upstream = serve(Upstream, tokenizer=AutoTokenizer.from_pretrained(model))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "work").mkdir()
        (folder / "work" / "notes.txt").write_text("buy milk\n")
        adapters = [f"--lora={name}={ensure_adapter('pirate')}" for name in AGENTS]  # unread
        upstream_url = f"http://127.0.0.1:{upstream.server_port}"
        gateway = ours(model, folder / "server.log", "--served-model-name", MODEL_NAME,
                       "--engine", "remote", "--upstream", upstream_url,
                       "--response-store", "none", *adapters)  # fmt: skip
        with all_stopped(gateway):
            wait_ready(gateway)
            recorder = serve(Recorder, gateway=gateway.base_url, bodies=[])
            url = f"http://127.0.0.1:{recorder.server_port}"
            run_claude(url, folder)
            claude = recorder.bodies[-1]
            run_codex(url, folder)
            codex = recorder.bodies[-1]
        write(claude, codex, folder)


def write(claude: dict, codex: dict, folder: Path) -> None:
    """The two bodies, without the ids that name the machine or session, as fixtures."""
    claude.pop("metadata", None)
    for key in ("client_metadata", "prompt_cache_key"):
        codex.pop(key, None)
    build = claude["system"][0]["text"].split("cc_version=2.1.328.")[1].split(";")[0]
    date = claude["messages"][1]["content"].split("Today's date is ")[1].rstrip(".")
    result = claude["messages"][-1]["content"][0]["content"]
    kernel = claude["messages"][1]["content"].split("OS Version: ")[1].split("\n")[0]
    claude_values = [
        (str(folder / "work"), "CWD"),
        (date, "DATE"),
        (build, "BUILD"),
        (kernel, "OS_VERSION"),
    ]
    claude_text = placeholders(claude, claude_values)
    claude_text = _anchored(claude_text, '"text": "Run ls."', "REQUEST", "Run ls.")
    claude_text = _anchored(claude_text, '"command": "ls"', "COMMAND", "ls")
    claude_text = _anchored(claude_text, f'"content": {json.dumps(result)}', "OUTPUT", result)
    (REQUESTS / "claude_code.json").write_text(claude_text)
    output = codex["input"][-1]["output"]
    arguments = codex["input"][-2]["arguments"]
    codex_values = [(str(folder / "work"), "CWD"), (str(folder / "codex-home"), "CODEX_HOME")]
    codex_text = placeholders(codex, [*codex_values, (date, "DATE")])
    codex_text = _anchored(codex_text, '"text": "Run ls."', "REQUEST", "Run ls.")
    for value, name in [(arguments, "ARGUMENTS"), (output, "OUTPUT")]:
        escaped = json.dumps(value)
        codex_text = _anchored(codex_text, escaped, name, escaped[1:-1])
    (REQUESTS / "codex.json").write_text(codex_text)


def _anchored(text: str, anchor: str, name: str, value: str) -> str:
    """TEXT with the one ANCHOR's VALUE made ``{{NAME}}``."""
    if text.count(anchor) != 1:
        raise SystemExit(f"{name}: {anchor!r} is not once in the recorded request")
    return text.replace(anchor, anchor.replace(value, "{{" + name + "}}"))


if __name__ == "__main__":
    main()
