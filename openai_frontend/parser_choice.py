"""Which output parsers a model gets: the operator's flags, else its chat template's.

``--tool-call-parser`` / ``--reasoning-parser`` (or a ``--config`` entry's
``tool_call_parser`` / ``reasoning_parser``) win. Without them the template's own
markup decides (:mod:`openai_frontend.parsing.detect`). A template that renders the
same prompt with and without ``tools`` (SmolLM2's) would hide the tools from the model,
so the gateway describes them itself in a system block and uses the hermes format
(:mod:`openai_frontend.tool_prompt`). Each template is examined once and the choice
logged, since the same few templates serve every request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from openai_frontend.parsing.detect import infer_parsers
from templates.renderer import ChatTemplateError, render

log = logging.getLogger(__name__)

#: The format the gateway's own tool prompt asks for.
INJECTED_FORMAT = "hermes"

_PROBE_MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
_PROBE_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "probe_tool_9f2c",
            "description": "probe",
            "parameters": {"type": "object", "properties": {}},
        },
    }
]


@dataclass(frozen=True)
class ChosenParsers:
    """The parsers for one (model, template) pair."""

    tools: str | None
    reasoning: str | None
    #: The template ignores ``tools``: the gateway writes the tool prompt itself.
    inject_tool_prompt: bool = False


def choose_parsers(
    template: str,
    configured_tools: str | None,
    configured_reasoning: str | None,
    special_tokens: tuple[tuple[str, str], ...] = (),
) -> ChosenParsers:
    """The parsers for ``template``; cached, and logged the first time."""
    return _choose(template, configured_tools, configured_reasoning, special_tokens)


@lru_cache(maxsize=64)
def _choose(
    template: str,
    configured_tools: str | None,
    configured_reasoning: str | None,
    special_tokens: tuple[tuple[str, str], ...],
) -> ChosenParsers:
    inferred = infer_parsers(template)
    ignores = ignores_tools(template, special_tokens)
    tools = configured_tools or inferred.tools or (INJECTED_FORMAT if ignores else None)
    chosen = ChosenParsers(
        tools=tools,
        reasoning=configured_reasoning or inferred.reasoning,
        inject_tool_prompt=ignores and tools == INJECTED_FORMAT,
    )
    log.info(
        "output parsers for chat template %08x: tool calls %s (%s), reasoning %s (%s)%s",
        hash(template) & 0xFFFFFFFF,
        chosen.tools,
        "flag" if configured_tools else "inferred",
        chosen.reasoning,
        "flag" if configured_reasoning else "inferred",
        "; the template ignores tools, so the gateway injects a tool prompt"
        if chosen.inject_tool_prompt
        else "",
    )
    return chosen


@lru_cache(maxsize=64)
def ignores_tools(template: str, special_tokens: tuple[tuple[str, str], ...] = ()) -> bool:
    """Whether ``template`` renders a conversation the same with and without tools.

    Decided by rendering, not by reading the source: a template may mention ``tools``
    and still drop them (or only render them in a branch a real request never takes).
    A template that fails on the probe is assumed to handle tools its own way.
    """
    tokens = dict(special_tokens)
    try:
        plain = render(template, _PROBE_MESSAGES, add_generation_prompt=True, special_tokens=tokens)
        with_tools = render(
            template,
            _PROBE_MESSAGES,
            tools=_PROBE_TOOLS,
            add_generation_prompt=True,
            special_tokens=tokens,
        )
    except ChatTemplateError:
        return False
    return plain == with_tools
