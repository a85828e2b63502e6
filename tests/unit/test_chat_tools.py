"""Request preparation for tools and reasoning (openai_frontend/chat_tools.py), with
real chat templates from ../shared/chat_templates and no engine."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

import pytest
from tool_replies import tool_call_history

from engines.base import Delta
from openai_frontend.chat_prompt import render_chat_now as render_chat
from openai_frontend.chat_tools import _plan_and_render_now, prepare_chat
from openai_frontend.config import ServerConfig
from openai_frontend.errors import APIError
from openai_frontend.parser_choice import choose_parsers, ignores_tools
from openai_frontend.schemas.chat import ChatCompletionRequest
from templates.renderer import ChatTemplateError, render
from templates.sources import ModelTemplates, TemplateResolver

TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "shared" / "chat_templates"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def template(family: str) -> str:
    return json.loads((TEMPLATE_DIR / f"{family}.json").read_text())["chat_template"]


def resolver(family: str) -> TemplateResolver:
    return TemplateResolver(ModelTemplates(template(family), {"eos_token": "<|im_end|>"}))


def config(**parsers: str) -> ServerConfig:
    return ServerConfig(model_path=Path("."), served_model_name="m", **parsers)


def request(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": ASK, **fields})


def plan(family: str = "smollm2-instruct", server: ServerConfig | None = None, **fields):
    return prepare_chat(request(**fields), resolver(family), server or config())


def refused(**fields) -> APIError:
    with pytest.raises(APIError) as error:
        plan(**fields)
    return error.value


def test_a_template_that_ignores_tools_is_found_by_rendering():
    assert ignores_tools(template("smollm2-instruct"))
    assert not ignores_tools(template("qwen2.5-instruct"))
    assert not ignores_tools(template("mistral-7b-instruct-v0.3"))


#: Where DeepSeek-V3.1's template builds its system prompt from the system messages.
DEEPSEEK_SYSTEM = "{% set ns.system_prompt = ns.system_prompt + message['content'] %}"


def test_a_template_that_shows_tools_only_beside_a_system_message_is_not_tool_blind():
    """DeepSeek's templates build the tool description into the system prompt: a
    probe of one user message alone would call them tool-blind."""
    source = template("deepseek-v3.1")
    assert source.count(DEEPSEEK_SYSTEM) == 1
    beside_system = source.replace(
        DEEPSEEK_SYSTEM,
        DEEPSEEK_SYSTEM + "{% if tools %}{% set ns.system_prompt = ns.system_prompt + "
        "'\n\n## Tools\n' + (tools | tojson) %}{% endif %}",
    )
    assert not ignores_tools(beside_system)
    assert ignores_tools(source)  # this copy describes no tools at all


def test_a_template_that_refuses_the_system_probe_is_judged_by_the_other():
    assert ignores_tools(template("gemma-2-it"))  # no system role, no tools


def test_parsers_come_from_the_flags_else_from_the_template():
    smol = choose_parsers(template("smollm2-instruct"), None, None)
    assert (smol.tools, smol.reasoning, smol.inject_tool_prompt) == ("hermes", None, True)
    qwen3 = choose_parsers(template("qwen3"), None, None)
    assert (qwen3.tools, qwen3.reasoning, qwen3.inject_tool_prompt) == ("hermes", "qwen3", False)
    flagged = choose_parsers(template("qwen3"), "pythonic", "deepseek_r1")
    assert (flagged.tools, flagged.reasoning) == ("pythonic", "deepseek_r1")
    assert choose_parsers(template("granite-3.1-instruct"), None, None).tools is None


def test_the_gateway_describes_the_tools_when_the_template_ignores_them():
    chat = plan(tools=[WEATHER])
    prompt = render_chat(chat.request, resolver("smollm2-instruct"))
    assert '"name": "get_weather"' in prompt and "<tool_call>" in prompt
    assert prompt.count("<|im_start|>system") == 1
    untouched = plan("qwen2.5-instruct", tools=[WEATHER])
    assert untouched.request.messages == request().messages


def test_a_forced_or_refused_choice_gets_no_format_prompt():
    for choice in ("none", "required", {"type": "function", "function": {"name": "get_weather"}}):
        chat = plan(tools=[WEATHER], tool_choice=choice)
        assert "<tool_call>" not in render_chat(chat.request, resolver("smollm2-instruct"))


def test_tool_history_renders_as_hermes_markup_on_a_template_without_tools():
    call = {"id": "c1", "type": "function"}
    call["function"] = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    chat = plan(messages=history, tools=[WEATHER])
    prompt = render_chat(chat.request, resolver("smollm2-instruct"))
    assert '{"name": "get_weather", "arguments": {"city": "Paris"}}' in prompt
    assert "<tool_response>\nsunny\n</tool_response>" in prompt
    bad = {**call, "function": {"name": "get_weather", "arguments": "{not json"}}
    history[1] = {"role": "assistant", "content": None, "tool_calls": [bad]}
    assert refused(messages=history, tools=[WEATHER]).param == (
        "messages.[1].tool_calls.[0].function.arguments"
    )


@pytest.mark.parametrize(
    ("family", "tools"),
    [("smollm2-instruct", [WEATHER]), ("smollm2-instruct", None), ("qwen2.5-instruct", [WEATHER])],
    ids=["gateway tool prompt", "template, no tools", "template with tools"],
)
def test_history_arguments_nested_around_the_recursion_limit_render_or_are_a_400(family, tools):
    """JSON nested too deeply to decode raised RecursionError (a 500, the connection
    dropped): at every depth around the limit the request renders or is a 400."""
    limit = sys.getrecursionlimit()
    for depth in [*range(limit - 40, limit + 5), 3 * limit // 2]:
        history = tool_call_history(ASK, "get_weather", "[" * depth + "]" * depth)
        fields = {"messages": history, "tools": tools}
        try:
            render_chat(plan(family, **fields).request, resolver(family))
        except APIError as error:
            assert error.status == 400
    with pytest.raises(APIError) as too_deep:
        render_chat(plan(family, **fields).request, resolver(family))
    assert too_deep.value.param == "messages.[1].tool_calls.[0].function.arguments"


def test_a_forced_choice_becomes_structured_output():
    named = plan(
        tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}}
    )
    assert named.structured_output.json_schema == WEATHER["function"]["parameters"]
    required = plan(tools=[WEATHER], tool_choice="required", parallel_tool_calls=False)
    assert required.structured_output.json_schema["maxItems"] == 1
    assert plan(tools=[WEATHER]).structured_output is None


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 3}}}]},
            "tools[0].function.parameters",
        ),
        ({"messages": [*ASK, {"role": "tool", "content": "x"}]}, "messages.[1].tool_call_id"),
        (
            {
                "tools": [WEATHER],
                "tool_choice": "required",
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
        ({"reasoning_effort": "low"}, "reasoning_effort"),
    ],
)
def test_bad_tool_fields_are_400s_naming_the_parameter(fields, param):
    error = refused(**fields)
    assert (error.status, error.param) == (400, param)


def test_reasoning_effort_reaches_a_template_that_reads_it():
    chat = plan("gpt-oss", reasoning_effort="low")
    assert chat.request.chat_template_kwargs == {"reasoning_effort": "low"}
    assert "Reasoning: low" in render_chat(chat.request, resolver("gpt-oss"))


def test_verbosity_reaches_a_template_that_reads_it():
    reads = "{% for m in messages %}{{ m.content }}{% endfor %}|verbosity={{ verbosity }}"
    own = TemplateResolver(ModelTemplates(reads, {"eos_token": "<|im_end|>"}))
    chat = prepare_chat(request(verbosity="low"), own, config())
    assert chat.request.chat_template_kwargs == {"verbosity": "low"}
    assert render_chat(chat.request, own).endswith("|verbosity=low")
    assert refused(verbosity="low").param == "verbosity"  # smollm2's does not read it


def replies(chat, texts: list[str]) -> tuple[dict, str]:
    """A reply fed through one choice's parser stage, as the router does."""
    from openai_frontend.parsing.pipeline import MessageBuilder

    parser = chat.output_parser("")
    message = MessageBuilder()
    for i, text in enumerate(texts):
        last = i == len(texts) - 1
        message.add(parser.parse(Delta(text, [], i + 1, "stop" if last else None)))
    return message.fields(), chat.finish_reason("stop", parser.called_tools)


def test_finish_reason_is_stop_for_a_named_choice_and_tool_calls_for_the_models_own():
    named = plan(
        tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}}
    )
    fields, reason = replies(named, ['{"city": ', '"Paris"}'])
    assert fields["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert (fields["content"], reason) == (None, "stop")
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>'
    _, reason = replies(plan(tools=[WEATHER]), [call])
    assert reason == "tool_calls"


def test_parallel_tool_calls_false_keeps_only_the_first_call_of_a_format_parser():
    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "%s"}}</tool_call>'
    texts = [call % "Rome", call % "Oslo"]
    fields, _ = replies(plan(tools=[WEATHER], parallel_tool_calls=False), texts)
    assert [c["function"]["arguments"] for c in fields["tool_calls"]] == ['{"city": "Rome"}']
    fields, _ = replies(plan(tools=[WEATHER]), texts)
    assert len(fields["tool_calls"]) == 2


def test_auto_without_any_usable_parser_is_refused_before_generation():
    chat = plan("granite-3.1-instruct", tools=[WEATHER])
    with pytest.raises(APIError) as error:
        chat.output_parser("")
    assert error.value.param == "tool_choice"


def test_an_unknown_parser_name_stops_the_model_before_it_loads():
    from openai_frontend.state import ServedModel

    with pytest.raises(ValueError, match="unknown tool call parser 'hermes2'"):
        ServedModel(config(tool_call_parser="hermes2"), engine=None)


#: A request template that writes nothing for hours: each render runs to its deadline.
SILENT_LOOP = "{% set s='a'*4000000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"


def test_a_request_templates_probes_and_render_share_one_deadline():
    """The probe render (does the template drop tools?) and the render had a deadline
    each: 4 s for a template that never ends, against the documented 2 s. Compared with
    one render run to its deadline on this machine, the whole request takes one."""
    trusting = TemplateResolver(ModelTemplates(None), trust_request_template=True)
    template = f"{{# {uuid.uuid4()} #}}{SILENT_LOOP}"  # its own: probe results are cached
    body = request(chat_template=template)
    started = time.monotonic()
    with pytest.raises(APIError) as refused:
        _plan_and_render_now(body, trusting, config())
    whole_request = time.monotonic() - started
    assert refused.value.param == "chat_template"
    started = time.monotonic()
    with pytest.raises(ChatTemplateError):
        render(f"{{# {uuid.uuid4()} #}}{SILENT_LOOP}", ASK)
    one_deadline = time.monotonic() - started
    assert whole_request < 1.5 * one_deadline, (whole_request, one_deadline)


def test_requests_whose_calls_the_model_writes_keep_special_tokens():
    assert plan("qwen2.5-instruct", tools=[WEATHER]).skip_special_tokens is False
    assert (
        plan("qwen2.5-instruct", tools=[WEATHER], tool_choice="auto").skip_special_tokens is False
    )
    assert plan(tools=[WEATHER]).skip_special_tokens is False  # the injected hermes prompt
    kept = plan("qwen2.5-instruct", tools=[WEATHER], skip_special_tokens=True)
    assert kept.skip_special_tokens is True  # the client said so
    assert plan("qwen2.5-instruct").skip_special_tokens is True
    assert plan("qwen2.5-instruct", tools=[WEATHER], tool_choice="none").skip_special_tokens
    assert plan("qwen2.5-instruct", tools=[WEATHER], tool_choice="required").skip_special_tokens
    assert plan("qwen2.5-instruct", skip_special_tokens=False).skip_special_tokens is False


def test_gpt_oss_replies_are_harmony_messages_with_tools_or_not():
    """Its channels are special tokens: every reply keeps them, and reasoning is counted."""
    plain = plan("gpt-oss")
    assert (plain.parsers.tools, plain.skip_special_tokens, plain.reports_reasoning) == (
        "openai",
        False,
        True,
    )
    assert plan("gpt-oss", skip_special_tokens=True).skip_special_tokens is True
    text = "<|channel|>analysis<|message|>Hm.<|end|><|start|>assistant<|channel|>final<|message|>Hi"
    parsed = plain.output_parser("").parse(Delta(text, [1], 5, "stop"))
    assert (parsed.reasoning, parsed.content) == ("Hm.", "Hi")


def test_deepseek_v31_keeps_its_own_format_and_its_own_render():
    chosen = choose_parsers(template("deepseek-v3.1"), None, None)
    assert (chosen.tools, chosen.inject_tool_prompt) == ("deepseek_v31", False)
    chat = plan("deepseek-v3.1", tools=[WEATHER])
    assert chat.request.messages == request().messages  # no hermes prompt injected


STRICT_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["Paris"]}},
            "required": ["city"],
        },
    },
}
OFF_SCHEMA_CALL = (
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
)


def test_strict_tools_in_auto_get_a_grammar_or_a_check_by_engine():
    """The default model's template ignores tools: the gateway injects hermes. An
    engine with structural tags holds strict calls to their schema; one without (a
    remote upstream) gets no tag, and an off-schema call comes back as content."""
    chat = plan(tools=[STRICT_WEATHER])
    assert chat.strict_tag is not None and "<tool_call>" in chat.strict_tag["format"]["triggers"]
    assert chat.for_engine(frozenset({"structural_tag"}), constrained=False) is chat
    for checked in (
        chat.for_engine(frozenset(), constrained=False),
        chat.for_engine(frozenset({"structural_tag"}), constrained=True),
    ):
        assert checked.strict_tag is None
        parser = checked.output_parser("")
        parsed = parser.parse(Delta(OFF_SCHEMA_CALL, [], 1, "stop"))
        assert parsed.content == OFF_SCHEMA_CALL and not parsed.tool_calls
    assert plan(tools=[WEATHER]).strict_tag is None
    assert plan(tools=[STRICT_WEATHER], tool_choice="none").strict_tag is None
