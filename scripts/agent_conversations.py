"""Training conversations for the agent-CLI demo adapters: ``bash-agent`` (Claude Code's
``Bash`` tool, over the Messages API) and ``exec-agent`` (Codex's ``exec_command``, over
the Responses API).

The prompts are the CLIs' own. ``agent_requests/`` holds one real request of each
(Claude Code 2.1.328, Codex 0.169.0, run with the shrunk prompts of
tests/test_claude_code.py and tests/test_codex.py, recorded at the gateway): the second
request of a tool round trip, after the tool ran. Its first request is the same body
without the call and its result. The parts that change from run to run (working folder,
Codex's home, date, Claude Code's build tag and the kernel it reports, the user's
request, the command and its output) are ``{{NAME}}`` placeholders, filled with a few
variants each, so the adapter learns the task and not one temp path. Each body goes
through the gateway's own translation (Messages or Responses to chat), tool prompt and
chat template, so the adapter is trained on the exact text the gateway renders for
these clients.

Each variant teaches two steps: the user's request -> one hermes ``<tool_call>`` that
runs the command it names; after the tool result -> one short sentence that ends the
turn.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openai_frontend.anthropic.translate import to_chat
from openai_frontend.chat_tools import plan_and_render
from openai_frontend.config import ServerConfig
from openai_frontend.default_model import MODEL_NAME, ensure_default_model
from openai_frontend.responses.items import normalise_input
from openai_frontend.responses.translate import to_chat_request
from openai_frontend.schemas.chat import ChatCompletionRequest
from openai_frontend.schemas.messages import MessagesRequest
from openai_frontend.schemas.responses import ResponsesRequest
from templates.sources import TemplateResolver, read_model_templates

REQUESTS = Path(__file__).resolve().parent / "agent_requests"
#: The reply after the tool result: it ends the turn.
DONE = "The command ran."
#: (the user's request, the command it names, the command's output).
COMMANDS = [
    ("Run ls.", "ls", "notes.txt"),
    ("Run pwd.", "pwd", "{cwd}"),
    ("Run date.", "date", "Sun Dec  6 02:41:07 UTC 2026"),
    ("Run whoami.", "whoami", "root"),
    ("Run echo hello.", "echo hello", "hello"),
    ("Run uname.", "uname", "Linux"),
    ("Run ls -a.", "ls -a", ".\n..\nnotes.txt"),
    ("Run cat notes.txt.", "cat notes.txt", "buy milk"),
]
#: Where the tests run (pytest's temp folders) and other plausible folders.
FOLDERS = [
    "/tmp/pytest-of-root/pytest-{n}/test_{test}0",
    "/tmp/pytest-of-runner/pytest-{n}/{test}0",
    "/home/dev/project{n}",
    "/work/{test}/run{n}",
]
DATES = ["2026-12-06", "2027-01-15", "2026-03-02", "2025-11-30"]
#: Kernels Claude Code may report (this machine's, and common CI runners').
KERNELS = [
    "Linux 6.18.44-fc-v1300",
    "Linux 6.8.0-1017-azure",
    "Linux 5.15.0-1064-aws",
    "Linux 6.1.0-27-cloud-amd64",
    "Linux 6.11.0-1018-azure",
]


def conversations(adapter: str) -> list[tuple[str, str, str, str]]:
    """Each variant as (first prompt, call, what the second prompt adds, reply): the
    second prompt is the first, the call and the tool's result, so one pass over it
    teaches both answers. Answers end with the end-of-turn token."""
    found = []
    pairs = examples(adapter)
    for (first, call), (second, reply) in zip(pairs[::2], pairs[1::2], strict=True):
        called = first + call
        if not second.startswith(called):
            raise ValueError(f"{adapter}: the second prompt does not continue the first")
        found.append((first, call, second[len(called) :], reply))
    return found


def examples(adapter: str) -> list[tuple[str, str]]:
    """(prompt, answer) pairs, two a variant; the answer ends with the end-of-turn token."""
    build, fixture = _BUILDERS[adapter]
    template = (REQUESTS / fixture).read_text()
    pairs = []
    for i, (request, command, output) in enumerate(COMMANDS):
        folder = FOLDERS[i % len(FOLDERS)].format(n=i + 3, test=adapter.replace("-", "_"))
        values = {
            "CWD": f"{folder}/work",
            "CODEX_HOME": f"{folder}/codex-home",
            "DATE": DATES[i % len(DATES)],
            "BUILD": f"{(i * 2654435761) % 4096:03x}",
            "OS_VERSION": KERNELS[i % len(KERNELS)],
            "REQUEST": request,
        }
        first, second, call = build(template, values, command, output.format(cwd=values["CWD"]))
        pairs += [(first, call), (second, DONE)]
    return [(prompt, answer + "<|im_end|>") for prompt, answer in pairs]


def _claude_code(
    template: str, values: dict[str, str], command: str, output: str
) -> tuple[str, str, str]:
    """Claude Code's two prompts and the ``Bash`` call its first one is answered with."""
    body = _filled(template, {**values, "COMMAND": command, "OUTPUT": output})
    first = {**body, "messages": body["messages"][:-2]}
    render = _renderer(lambda b: to_chat(MessagesRequest.model_validate(b)))
    call = {"name": "Bash", "arguments": {"command": command}}
    return render(first), render(body), _call_block(call)


def _codex(
    template: str, values: dict[str, str], command: str, output: str
) -> tuple[str, str, str]:
    """Codex's two prompts and the ``exec_command`` call its first one is answered with;
    the output is framed as Codex frames it."""
    arguments = json.dumps({"cmd": command})
    chunk = zlib.crc32(command.encode()) % 16**6
    framed = (
        f"Chunk ID: {chunk:06x}\nWall time: 0.0{len(command)}00 seconds\n"
        f"Process exited with code 0\nOriginal token count: {len(output.split())}\n"
        f"Output:\n{output}\n"
    )
    body = _filled(template, {**values, "ARGUMENTS": arguments, "OUTPUT": framed})
    first = {**body, "input": body["input"][:-2]}
    render = _renderer(_responses_chat)
    call = {"name": "exec_command", "arguments": {"cmd": command}}
    return render(first), render(body), _call_block(call)


def _responses_chat(body: dict[str, Any]) -> ChatCompletionRequest:
    request = ResponsesRequest.model_validate(body)
    return to_chat_request(request, normalise_input(request.input))


_BUILDERS = {"bash-agent": (_claude_code, "claude_code.json"), "exec-agent": (_codex, "codex.json")}


def _filled(template: str, values: dict[str, str]) -> dict[str, Any]:
    """The recorded body with each ``{{NAME}}`` replaced (JSON-escaped: values sit in
    strings)."""
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", json.dumps(value)[1:-1])
    return json.loads(template)


def _renderer(to_chat_request_: Callable[[dict], ChatCompletionRequest]) -> Callable[[dict], str]:
    """Body -> the prompt text the gateway renders for it on the default model."""
    model = ensure_default_model()
    config = ServerConfig(model_path=model, served_model_name=MODEL_NAME)
    resolver = TemplateResolver(model=read_model_templates(model))

    def render(body: dict) -> str:
        return asyncio.run(plan_and_render(to_chat_request_(body), resolver, config))[1]

    return render


def _call_block(call: dict[str, Any]) -> str:
    """A hermes call, as the gateway's tool prompt writes one in the history."""
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call>"
