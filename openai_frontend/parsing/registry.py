"""Parsers by name, as ``--reasoning-parser`` and ``--tool-call-parser`` spell them."""

from __future__ import annotations

from openai_frontend.parsing.base import ReasoningParser, ToolParser
from openai_frontend.parsing.pipeline import OutputParser
from openai_frontend.parsing.reasoning import DeepSeekR1ReasoningParser, Qwen3ReasoningParser
from openai_frontend.parsing.tools_hermes import HermesToolParser
from openai_frontend.parsing.tools_llama3_json import Llama3JsonToolParser
from openai_frontend.parsing.tools_mistral import MistralToolParser
from openai_frontend.parsing.tools_pythonic import PythonicToolParser

REASONING_PARSERS: dict[str, type[ReasoningParser]] = {
    "deepseek_r1": DeepSeekR1ReasoningParser,
    "qwen3": Qwen3ReasoningParser,
}

TOOL_PARSERS: dict[str, type[ToolParser]] = {
    "hermes": HermesToolParser,
    "llama3_json": Llama3JsonToolParser,
    "mistral": MistralToolParser,
    "pythonic": PythonicToolParser,
}


def _lookup(kind: str, table: dict[str, type], name: str) -> type:
    if name not in table:
        raise ValueError(f"unknown {kind} parser {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def make_output_parser(
    reasoning: str | None = None, tools: str | None = None
) -> OutputParser:
    """A fresh parser stage for one choice; ValueError names an unknown parser."""
    reasoning_parser = _lookup("reasoning", REASONING_PARSERS, reasoning) if reasoning else None
    tool_parser = _lookup("tool call", TOOL_PARSERS, tools) if tools else None
    return OutputParser(
        reasoning_parser() if reasoning_parser else None, tool_parser() if tool_parser else None
    )
