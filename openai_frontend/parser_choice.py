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

_PROBE_USER = {"role": "user", "content": "What is the weather in Paris?"}
#: One user message, then the same beside a system message: some templates (DeepSeek's)
#: describe the tools only inside the system prompt they build from a system message.
_PROBE_CONVERSATIONS = (
    [_PROBE_USER],
    [{"role": "system", "content": "You are a helpful assistant."}, _PROBE_USER],
)
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
    Each probe conversation that renders must render the same; a probe the template
    refuses (no system role, say) does not count. A template that refuses every probe
    is assumed to handle tools its own way.
    """
    verdicts = [
        _same_without_tools(template, dict(special_tokens), messages)
        for messages in _PROBE_CONVERSATIONS
    ]
    rendered = [same for same in verdicts if same is not None]
    return bool(rendered) and all(rendered)


def _same_without_tools(
    template: str, tokens: dict[str, str], messages: list[dict[str, str]]
) -> bool | None:
    """Whether ``messages`` render the same with and without the probe tool (None: the
    template refuses them)."""
    try:
        plain = render(template, messages, add_generation_prompt=True, special_tokens=tokens)
        with_tools = render(
            template,
            messages,
            tools=_PROBE_TOOLS,
            add_generation_prompt=True,
            special_tokens=tokens,
        )
    except ChatTemplateError:
        return None
    return plain == with_tools
