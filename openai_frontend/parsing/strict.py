"""Strict tools (``tools[].function.strict: true``) in ``auto`` mode: any call the model
makes matches its function's schema, and the model stays free to answer in text.

Two ways, chosen per request (see :meth:`openai_frontend.chat_tools.ChatPlan.for_engine`):

* **A grammar.** An engine with xgrammar's structural tags (vLLM, TensorRT-LLM) gets
  :func:`strict_tools_tag`: free text until the format's opening marker (its trigger),
  then one of the declared calls, its arguments held to the function's schema. Each
  format says how its calls are written (:class:`CallGrammar`), or that it cannot: a
  format whose calls have no opening marker (llama3_json and pythonic calls are plain
  JSON or Python at the reply's start; harmony's headers have several spellings).
* **A check.** Otherwise (a remote upstream, or a format without a trigger) the parsed
  call's arguments are validated against the schema (:class:`StrictSchemas`); a call that
  does not match is not a call, and its markup is returned as content, verbatim, as for
  any other invalid markup.

Non-strict tools of the same request stay callable: their arguments must be a JSON
object, of any shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from jsonschema import Draft202012Validator
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from openai_frontend.parsing.base import ParsedCall

#: What a non-strict function's arguments are held to: any object.
ANY_OBJECT: dict[str, Any] = {"type": "object"}


def tag(begin: str, content: dict[str, Any], end: str) -> dict[str, Any]:
    """xgrammar's ``tag`` format: ``begin``, then ``content``, then ``end``."""
    return {"type": "tag", "begin": begin, "content": content, "end": end}


def json_arguments(schema: dict[str, Any], style: str = "json") -> dict[str, Any]:
    """Arguments held to ``schema``, written as JSON or in one of xgrammar's XML styles."""
    return {"type": "json_schema", "json_schema": schema, "style": style}


def const(value: str) -> dict[str, Any]:
    return {"type": "const_string", "value": value}


def sequence(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "sequence", "elements": list(elements)}


def calls_section(
    begin: str, end: str, calls: list[dict[str, Any]], single: bool
) -> list[dict[str, Any]]:
    """One section holding one or more of ``calls`` (DeepSeek's, Kimi-K2's)."""
    inner = {
        "type": "tags_with_separator",
        "tags": calls,
        "separator": "",
        "at_least_one": True,
        "stop_after_first": single,
    }
    return [tag(begin, inner, end)]


class CallGrammar(Protocol):
    """What a format says of its calls, for a grammar (class attributes of its parser)."""

    #: Texts that open a call block anywhere in a reply; empty: the format cannot say.
    call_triggers: tuple[str, ...]

    @classmethod
    def call_tags(cls, name: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
        """The tags a call to ``name`` may be written as, each beginning with a trigger."""

    @classmethod
    def section_tags(cls, calls: list[dict[str, Any]], single: bool) -> list[dict[str, Any]]:
        """The tags of a reply's call block, given every function's call tags."""


def strict_functions(tools: Sequence[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """The request's strict functions, name -> parameters schema."""
    strict = {}
    for tool in tools or ():
        function = tool.get("function") or {}
        if function.get("strict") is True:
            strict[function["name"]] = function.get("parameters") or {
                "type": "object",
                "properties": {},
            }
    return strict


def strict_tools_tag(
    grammar: CallGrammar | None,
    tools: Sequence[dict[str, Any]] | None,
    parallel_tool_calls: bool | None,
) -> dict[str, Any] | None:
    """The structural tag that holds strict calls to their schemas in ``auto`` mode, or
    None: no tool is strict, or the format has no trigger to start a call by."""
    strict = strict_functions(tools)
    if not strict or grammar is None or not grammar.call_triggers:
        return None
    single = parallel_tool_calls is False
    calls = []
    for tool in tools or ():
        name = tool["function"]["name"]
        calls.extend(grammar.call_tags(name, strict.get(name, ANY_OBJECT)))
    body = {
        "type": "triggered_tags",
        "triggers": list(grammar.call_triggers),
        "tags": grammar.section_tags(calls, single),
        "at_least_one": False,
        "stop_after_first": single,
    }
    return {"type": "structural_tag", "format": body}


@dataclass(frozen=True)
class StrictSchemas:
    """The strict functions' schemas, to check calls no grammar constrained."""

    validators: Mapping[str, Validator]

    @classmethod
    def of(cls, tools: Sequence[dict[str, Any]] | None) -> StrictSchemas | None:
        """None when no tool is strict (nothing to check)."""
        strict = strict_functions(tools)
        if not strict:
            return None
        validators = {
            name: validator_for(schema, default=Draft202012Validator)(schema)
            for name, schema in strict.items()
        }
        return cls(validators)

    def allows(self, call: ParsedCall) -> bool:
        """Whether ``call`` matches its function's schema (always, for a non-strict one)."""
        validator = self.validators.get(call.name)
        if validator is None:
            return True
        try:
            return validator.is_valid(orjson.loads(call.arguments))
        except (orjson.JSONDecodeError, RecursionError):
            return False
