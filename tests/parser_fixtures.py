"""One server for the tool-calling and reasoning tests (tests/test_tools.py and
tests/test_reasoning.py): the default model with the ``weather`` and ``thinker`` demo
adapters, served with Qwen2.5's chat template and both parser flags.

The ``thinker`` requests send Qwen3's template in the request (the server trusts
request templates), so one engine start serves both files. The reasoning parser is
harmless for ``weather``: a reply that does not open ``<think>`` is all answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from demo_adapters import ensure_adapter
from demo_conversations import template_source
from servers import ours, wait_ready

from openai_frontend.default_model import ensure_default_model

SERVED_NAME = "smol"
#: Forced JSON without free whitespace: the ``thinker`` was never taught JSON layout, and
#: under a grammar that allows any whitespace it indents until ``max_tokens``.
COMPACT_JSON = {"backend": "xgrammar", "disable_any_whitespace": True}


@dataclass(frozen=True)
class ParserServer:
    base_url: str
    #: Qwen3's template, for the ``thinker`` requests.
    qwen3_template: str

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture(scope="session")
def parser_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParserServer]:
    model = ensure_default_model()
    adapters = {name: ensure_adapter(name) for name in ("weather", "thinker")}
    folder = tmp_path_factory.mktemp("parser-server")
    template = folder / "qwen2.5-instruct.jinja"
    template.write_text(template_source("weather"))
    running = ours(
        model,
        folder / "server.log",
        *("--served-model-name", SERVED_NAME, "--chat-template", str(template)),
        "--trust-request-chat-template",
        *(f"--lora={name}={path}" for name, path in adapters.items()),
        *("--tool-call-parser", "hermes", "--reasoning-parser", "qwen3"),
        *("--engine-args", json.dumps({"structured_outputs_config": COMPACT_JSON})),
        *("--response-store", str(folder / "responses.sqlite3")),
    )
    try:
        wait_ready(running)
        yield ParserServer(running.base_url, template_source("thinker"))
    finally:
        running.stop()


@pytest.fixture(scope="session")
def parser_http(parser_server: ParserServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=parser_server.base_url, timeout=300) as session:
        yield session
