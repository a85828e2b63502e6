"""Parsers by name, as ``--reasoning-parser`` and ``--tool-call-parser`` spell them,
and the choice of tool parser for one request."""

from __future__ import annotations

from typing import Any

from openai_frontend.errors import APIError
from openai_frontend.parsing.base import ToolParser
from openai_frontend.parsing.forced import ForcedToolParser, forced_function_name
from openai_frontend.parsing.pipeline import OutputParser
from openai_frontend.parsing.reasoning import (
    DeepSeekR1ReasoningParser,
    Qwen3ReasoningParser,
    ThinkBlockParser,
)
from openai_frontend.parsing.strict import CallGrammar, StrictSchemas
from openai_frontend.parsing.tools_block import BlockToolParser
from openai_frontend.parsing.tools_deepseek import DeepSeekV3ToolParser, DeepSeekV31ToolParser
from openai_frontend.parsing.tools_glm45 import Glm45ToolParser
from openai_frontend.parsing.tools_harmony import HarmonyToolParser
from openai_frontend.parsing.tools_hermes import HermesToolParser
from openai_frontend.parsing.tools_kimi_k2 import KimiK2ToolParser
from openai_frontend.parsing.tools_llama3_json import Llama3JsonToolParser
from openai_frontend.parsing.tools_mistral import MistralToolParser
from openai_frontend.parsing.tools_pythonic import PythonicToolParser
from openai_frontend.parsing.tools_qwen3_coder import Qwen3CoderToolParser

REASONING_PARSERS: dict[str, type[ThinkBlockParser]] = {
    "deepseek_r1": DeepSeekR1ReasoningParser,
    "qwen3": Qwen3ReasoningParser,
}

#: gpt-oss's harmony format (vLLM's name): it carries the reasoning too, so it parses
#: every reply of its model, with tools or not.
HARMONY = "openai"

#: Each takes the request's declared functions (name -> parameters schema), or None, and
#: the strict functions to check (None: none, or a grammar held them to their schemas);
#: as a class, each says how its calls are written for that grammar (:mod:`.strict`).
TOOL_PARSERS: dict[str, type[BlockToolParser] | type[HarmonyToolParser]] = {
    "deepseek_v3": DeepSeekV3ToolParser,
    "deepseek_v31": DeepSeekV31ToolParser,
    "glm45": Glm45ToolParser,
    "hermes": HermesToolParser,
    "kimi_k2": KimiK2ToolParser,
    "llama3_json": Llama3JsonToolParser,
    "mistral": MistralToolParser,
    HARMONY: HarmonyToolParser,
    "pythonic": PythonicToolParser,
    "qwen3_coder": Qwen3CoderToolParser,
}


def check_parser_names(reasoning: str | None, tools: str | None) -> None:
    """At startup: ValueError naming an unknown parser and the known ones."""
    for kind, table, name in (
        ("reasoning", REASONING_PARSERS, reasoning),
        ("tool call", TOOL_PARSERS, tools),
    ):
        if name is not None and name not in table:
            raise ValueError(f"unknown {kind} parser {name!r}; known: {', '.join(sorted(table))}")


def make_output_parser(
    reasoning: str | None = None, tools: str | ToolParser | None = None, prompt: str = ""
) -> OutputParser:
    """A fresh parser stage for one choice (names checked by :func:`check_parser_names`).

    ``tools`` is a parser name or a ready parser (see :func:`tool_parser_for_request`).
    ``prompt`` is the rendered prompt (its tail suffices): whether the template already
    opened or closed the reasoning section decides where the reply starts.
    """
    check_parser_names(reasoning, tools if isinstance(tools, str) else None)
    return OutputParser(
        REASONING_PARSERS[reasoning](prompt) if reasoning else None,
        TOOL_PARSERS[tools](None, None) if isinstance(tools, str) else tools,
    )


def tool_parser_for_request(
    configured: str | None,
    tools: list[dict[str, Any]] | None,
    tool_choice: str | dict | None,
    strict: StrictSchemas | None = None,
) -> ToolParser | None:
    """The tool parser one choice of this request needs, or None for plain text.

    A forced choice (a named function, or ``required``) is constrained by structured
    output and parsed as such; ``auto`` needs the server's configured format parser,
    and without one the request is refused rather than the tools silently ignored.
    ``strict``: the strict functions whose calls no grammar held to their schemas.
    """
    forced = forced_function_name(tool_choice)
    if tools and (forced is not None or tool_choice == "required"):
        return ForcedToolParser(forced)
    if configured == HARMONY:
        declared = declared_functions(tools if tool_choice != "none" else None)
        return HarmonyToolParser(declared, strict)
    if not tools or tool_choice == "none":
        return None
    if configured is None:
        raise APIError(
            "tool_choice 'auto' needs a tool call parser; this server was started without "
            "one. Send tool_choice 'none', 'required' or a named function.",
            param="tool_choice",
            code="unsupported_parameter",
        )
    return TOOL_PARSERS[configured](declared_functions(tools), strict)


def declared_functions(tools: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """The request's functions, name -> parameters schema: only these become calls,
    and formats that write arguments as text read their types from the schema."""
    functions = (tool.get("function") or {} for tool in tools or [])
    return {function.get("name"): function.get("parameters") or {} for function in functions}


def call_grammar(configured: str | None) -> CallGrammar | None:
    """How the configured format writes its calls, for the strict tools' grammar."""
    return TOOL_PARSERS.get(configured) if configured is not None else None
