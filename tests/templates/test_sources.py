"""Where templates come from, and the errors when none can be found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from templates.renderer import ChatTemplateError, select_template
from templates.sources import (
    ModelTemplates,
    TemplateResolver,
    bundled_names,
    load_template_option,
    read_model_templates,
)


def test_request_template_needs_trust():
    resolver = TemplateResolver(model=ModelTemplates(template="model"))
    with pytest.raises(ChatTemplateError) as caught:
        resolver.resolve("mine")
    assert caught.value.param == "chat_template"
    assert (
        TemplateResolver(model=ModelTemplates(), trust_request_template=True).resolve("mine")
        == "mine"
    )


def test_order_request_then_flag_then_model():
    resolver = TemplateResolver(
        model=ModelTemplates(template="model"), server_template="flag", trust_request_template=True
    )
    assert resolver.resolve("request") == "request"
    assert resolver.resolve(None) == "flag"
    assert TemplateResolver(model=ModelTemplates(template="model")).resolve(None) == "model"


def test_no_template_says_how_to_give_one():
    with pytest.raises(ChatTemplateError) as caught:
        TemplateResolver(model=ModelTemplates()).resolve(None)
    message = caught.value.message
    assert "--chat-template" in message
    for name in bundled_names():
        assert name in message


def test_bundled_and_file_templates(tmp_path: Path):
    assert {"chatml", "basic"} <= set(bundled_names())
    path = tmp_path / "t.jinja"
    path.write_text("{{ messages }}")
    assert load_template_option(str(path)) == "{{ messages }}"
    with pytest.raises(ValueError, match="neither a file nor a bundled"):
        load_template_option("no-such-template")


def test_model_folder_template_and_tokens(tmp_path: Path):
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "chat_template": [
                    {"name": "default", "template": "D"},
                    {"name": "tool_use", "template": "T"},
                ],
                "bos_token": {"content": "<s>", "lstrip": False},
                "eos_token": "</s>",
                "model_max_length": 10,
            }
        )
    )
    templates = read_model_templates(tmp_path)
    assert templates.special_tokens == {"bos_token": "<s>", "eos_token": "</s>"}
    assert select_template(templates.template, has_tools=True) == "T"
    assert select_template(templates.template, has_tools=False) == "D"
    (tmp_path / "chat_template.jinja").write_text("J")
    assert read_model_templates(tmp_path).template == "J"


def test_named_templates_without_default():
    with pytest.raises(ChatTemplateError, match="none named 'default'"):
        select_template([{"name": "rag", "template": "R"}], has_tools=False)
