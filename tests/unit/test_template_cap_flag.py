"""``--max-chat-template-bytes`` reaches each served model's template resolver."""

from __future__ import annotations

from pathlib import Path

import pytest

from openai_frontend.cli import build_parser
from openai_frontend.config import ServerConfig
from openai_frontend.state import ServedModel
from templates.errors import ChatTemplateError
from templates.sources import DEFAULT_MAX_REQUEST_TEMPLATE_BYTES


def test_flag_default_and_value() -> None:
    parser = build_parser()
    default = parser.parse_args(["serve"]).max_chat_template_bytes
    assert default == DEFAULT_MAX_REQUEST_TEMPLATE_BYTES
    given = parser.parse_args(["serve", "--max-chat-template-bytes", "16"])
    assert given.max_chat_template_bytes == 16


def test_served_model_resolver_applies_the_configured_cap(tmp_path: Path) -> None:
    config = ServerConfig(
        model_path=tmp_path,
        served_model_name="m",
        trust_request_chat_template=True,
        max_chat_template_bytes=16,
    )
    resolver = ServedModel(config=config, engine=None).resolver  # no engine: templates only
    assert resolver.resolve("x" * 16) == "x" * 16
    with pytest.raises(ChatTemplateError, match="limit of 16 bytes"):
        resolver.resolve("x" * 17)
