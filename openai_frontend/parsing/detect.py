"""Which parsers fit a model, guessed from its chat template's text.

A template shows the markup it expects the model to write: a model whose template
renders ``<tool_call>`` blocks writes them. Returns None for a kind when nothing
matches, so the caller can ask the operator rather than guess wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Template text -> tool call parser, first match wins (formats that also write
#: ``<tool_call>`` come before hermes).
_TOOL_SIGNS = (
    ("<|channel|>", "openai"),  # gpt-oss's harmony
    ("<function=", "qwen3_coder"),
    ("<arg_key>", "glm45"),
    ("<|tool_calls_section_begin|>", "kimi_k2"),
    ("<｜tool▁calls▁begin｜>", "deepseek_v31"),
    ("<tool_call>", "hermes"),
    ("[TOOL_CALLS]", "mistral"),
    ("<|python_tag|>", "llama3_json"),
    ('{"name": function name, "parameters"', "llama3_json"),  # Llama 3.2 states it
)


@dataclass(frozen=True)
class InferredParsers:
    reasoning: str | None
    tools: str | None


def infer_parsers(template: str) -> InferredParsers:
    return InferredParsers(_reasoning(template), _tools(template))


def _tools(template: str) -> str | None:
    name = next((name for sign, name in _TOOL_SIGNS if sign in template), None)
    if name == "deepseek_v31" and "```json" in template:
        return "deepseek_v3"  # V3 and R1 fence the arguments; V3.1 does not
    return name


def _reasoning(template: str) -> str | None:
    """``qwen3`` when the model opens ``<think>`` itself; ``deepseek_r1`` when the
    generation prompt opens it (the reply then starts inside the reasoning)."""
    if "<think>" not in template:
        return None
    if _prompt_opens_think(template) and "enable_thinking" not in template:
        return "deepseek_r1"
    return "qwen3"


def _prompt_opens_think(template: str) -> bool:
    at = template.rfind("add_generation_prompt")
    return at >= 0 and "<think>" in template[at : at + 200]
