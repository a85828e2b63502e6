"""Where a constrained reply's grammar starts on a model that reasons first.

A forced tool choice (a named function or ``required``) and a JSON ``response_format``
constrain the reply with a grammar. On a reasoning model that grammar must start where
the reasoning ends: from the first token, ``</think>`` could never be written, and the
whole reply, the forced call included, would count as reasoning. Two ways keep it right:

* an engine that can wait for the end of the reasoning (vLLM, through
  :mod:`engines.vllm_reasoning_gate`) is told where the reply starts
  (``SamplingParams.constraint_after_reasoning``), and the reasoning stays;
* for any other engine, the template's ``enable_thinking`` switch turns the reasoning off
  for that request, so the prompt closes it and the grammar rightly starts at once. A
  template without that switch gets a 400 naming the constrained field, never a reply
  that is all reasoning.
"""

from __future__ import annotations

from typing import Literal

from openai_frontend.errors import APIError
from openai_frontend.parsing.forced import forced_function_name
from openai_frontend.parsing.registry import REASONING_PARSERS
from openai_frontend.schemas.chat import ChatCompletionRequest

#: The template variable that turns thinking off (Qwen3's, and the templates like it).
THINKING_SWITCH = "enable_thinking"

ReplyStart = Literal["inside", "may_open"]


def constrained_field(body: ChatCompletionRequest) -> str | None:
    """The field that constrains the whole reply with a grammar, or None."""
    if body.tools and (body.tool_choice == "required" or forced_function_name(body.tool_choice)):
        return "tool_choice"
    if body.response_format is not None and body.response_format.type != "text":
        return "response_format"
    return None


def reasoning_start(reasoning_parser: str | None, prompt: str) -> ReplyStart | None:
    """Where the reply's reasoning stands as generation starts, as the gateway's own
    reasoning parser reads the prompt's end: None when there is none to wait for (no
    parser, or a prompt that already closed it); "inside" when the reply starts inside
    it; "may_open" when the reply has one only if it opens ``<think>`` itself."""
    if reasoning_parser is None:
        return None
    parser = REASONING_PARSERS[reasoning_parser](prompt[-64:])
    if parser.passthrough:
        return None
    return "inside" if parser.in_reasoning else "may_open"


def thinking_off(
    body: ChatCompletionRequest, template: str, kwargs: dict | None
) -> dict[str, object]:
    """The request's ``chat_template_kwargs`` (``kwargs``) with thinking turned off, for an
    engine whose grammar cannot wait for the reasoning to end; a 400 naming the
    constrained field when the template has no switch or the client turned it on."""
    field = constrained_field(body)
    asked = dict(kwargs or {})
    if THINKING_SWITCH not in template or asked.get(THINKING_SWITCH, False):
        raise APIError(
            f"{field} constrains the reply with a grammar, and the engine serving this "
            "reasoning model cannot start a grammar after the reasoning; its chat template "
            f"has no '{THINKING_SWITCH}' switch that turns the reasoning off "
            f"(or the request turned it on).",
            param=field,
            code="unsupported_parameter",
        )
    return {**asked, THINKING_SWITCH: False}
