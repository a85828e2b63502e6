"""Our renderer equals transformers' apply_chat_template, byte for byte, on real templates.

Both sides get the same template text, the same special tokens and the same messages;
a conversation a template rejects (``raise_exception``) must be rejected by both.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from conversations import CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openai_frontend.chat_prompt import _content
from openai_frontend.schemas.chat import ChatMessage
from templates.renderer import ChatTemplateError, iterates_over_content, render, select_template
from templates.sources import load_template_option

pytest.importorskip("transformers")
from tokenizers import Tokenizer, models  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "shared" / "chat_templates"
FAMILIES = sorted(path.stem for path in TEMPLATE_DIR.glob("*.json"))


def _family(name: str) -> dict:
    return json.loads((TEMPLATE_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _special_tokens(family: dict) -> dict[str, str]:
    return {key: family[key] for key in ("bos_token", "eos_token") if family.get(key)}


def _hf_tokenizer(family: dict) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **_special_tokens(family))
    template = family["chat_template"]
    tokenizer.chat_template = (
        template if isinstance(template, str) else {t["name"]: t["template"] for t in template}
    )
    return tokenizer


def _prepared(messages: list[dict], template: str) -> list[dict]:
    """Content as our server hands it to templates (parts kept or joined by AST)."""
    as_list = iterates_over_content(template)
    prepared = copy.deepcopy(messages)
    for i, message in enumerate(prepared):
        if isinstance(message.get("content"), list):
            message["content"] = _content(ChatMessage(**message), i, as_list)
    return prepared


def _transformers(family: dict, messages: list[dict], options: dict) -> str:
    options = dict(options)
    kwargs = options.pop("template_kwargs", {}) or {}
    options.setdefault("add_generation_prompt", True)
    return _hf_tokenizer(family).apply_chat_template(
        copy.deepcopy(messages), tokenize=False, **options, **kwargs
    )


def _ours(family: dict, messages: list[dict], options: dict) -> str:
    options = dict(options)
    options.setdefault("add_generation_prompt", True)
    template = select_template(family["chat_template"], bool(options.get("tools")))
    return render(template, messages, special_tokens=_special_tokens(family), **options)


def _assert_same(family: dict, messages: list[dict], options: dict) -> None:
    template = select_template(family["chat_template"], bool(options.get("tools")))
    messages = _prepared(messages, template)
    try:
        expected = _transformers(family, messages, options)
    except Exception:  # the template (or transformers) refused this conversation
        with pytest.raises(ChatTemplateError):
            _ours(family, messages, options)
        return
    assert _ours(family, messages, options) == expected


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("family_name", FAMILIES)
def test_equal_to_transformers(family_name: str, case: str) -> None:
    messages, options = CASES[case]
    _assert_same(_family(family_name), messages, options)


def test_every_family_renders_something() -> None:
    """Guards the test above against passing only because everything raised."""
    for name in FAMILIES:
        family = _family(name)
        messages, options = CASES["system_multi_turn"]
        alternatives = [CASES["single_user"][0], messages]
        outputs = []
        for conversation in alternatives:
            try:
                outputs.append(
                    _ours(
                        family,
                        _prepared(conversation, select_template(family["chat_template"], False)),
                        options,
                    )
                )
            except ChatTemplateError:
                continue
        assert outputs and all(outputs), name


text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40
) | st.sampled_from(["{{ 7*7 }}", "{% raise %}", "<|im_end|>", " lead", "trail ", "\n\n"])


@st.composite
def conversations(draw) -> list[dict]:
    turns = draw(st.integers(min_value=1, max_value=6))
    messages = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(text)})
    for i in range(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": draw(text)})
    return messages


@pytest.mark.parametrize("family_name", ["chatml", "llama-3.1-instruct", "qwen2.5-instruct"])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(messages=conversations(), add_generation_prompt=st.booleans())
def test_generated_conversations(
    family_name: str, messages: list[dict], add_generation_prompt: bool
) -> None:
    if family_name == "chatml":
        family = {
            "chat_template": load_template_option("chatml"),
            "bos_token": None,
            "eos_token": None,
        }
    else:
        family = _family(family_name)
    _assert_same(family, messages, {"add_generation_prompt": add_generation_prompt})
