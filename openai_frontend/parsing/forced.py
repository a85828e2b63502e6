"""Forced tool choice through structured output: the schema to constrain decoding
with, and the parsing of the constrained reply back into tool calls.

* ``tool_choice: {"type": "function", "function": {"name": N}}``: the reply is N's
  arguments object, constrained by N's ``parameters`` schema.
* ``tool_choice: "required"``: the reply is a JSON array of ``{"name", "arguments"}``
  items, each one of the given tools (``anyOf``); exactly one item when
  ``parallel_tool_calls`` is false. The tools' ``$defs`` move to the array's root
  (:mod:`.schema_defs`), where their ``#/$defs/...`` pointers find them.

A constrained reply that does not parse (cut by ``max_tokens``) is returned as content,
verbatim, like any unfinished markup.
"""

from __future__ import annotations

from typing import Any

from openai_frontend import jsondecode
from openai_frontend.parsing.base import CallNumbering, ParsedCall, ParsedDelta
from openai_frontend.parsing.schema_defs import HoistedDefinitions

#: What a function without ``parameters`` takes: nothing.
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def forced_function_name(tool_choice: str | dict | None) -> str | None:
    """The function a named ``tool_choice`` forces, else None."""
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return function["name"]
    return None


def function_parameters(tools: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for tool in tools:
        function = tool.get("function") or {}
        if function.get("name") == name:
            return function.get("parameters") or NO_PARAMETERS
    raise KeyError(name)


def forced_tool_schema(
    tools: list[dict[str, Any]] | None,
    tool_choice: str | dict | None,
    parallel_tool_calls: bool | None = None,
) -> dict[str, Any] | None:
    """The JSON Schema that forces the chosen call(s), or None when nothing is forced.

    Expects a request that :func:`~openai_frontend.parsing.validation.validate_tools`
    accepted (a named function is one of ``tools``).
    """
    name = forced_function_name(tool_choice)
    if name is not None:
        return function_parameters(tools or [], name)
    if tool_choice != "required":
        return None
    definitions = HoistedDefinitions()
    items = [_call_item(tool["function"], definitions) for tool in tools or []]
    schema: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": items}}
    if parallel_tool_calls is False:
        schema["maxItems"] = 1
    return definitions.add_to(schema)


def _call_item(function: dict[str, Any], definitions: HoistedDefinitions) -> dict[str, Any]:
    """One tool's ``{name, arguments}`` item, its ``$defs`` moved to the array's root."""
    parameters = function.get("parameters") or NO_PARAMETERS
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string", "const": function["name"]},
            "arguments": definitions.take(function["name"], parameters),
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def parse_forced_output(text: str, forced_name: str | None) -> list[ParsedCall] | None:
    """The calls in a constrained reply (``forced_name`` set: its arguments object;
    else the ``required`` array), or None if the reply does not parse."""
    try:
        value = jsondecode.loads(text)
        if forced_name is not None:
            return [_call(forced_name, value)]
        if not isinstance(value, list) or not value:
            return None
        return [_call(item["name"], item["arguments"]) for item in value]
    except (ValueError, TypeError, KeyError):
        return None


def _call(name: Any, arguments: Any) -> ParsedCall:
    if not isinstance(name, str) or not isinstance(arguments, dict):
        raise ValueError("not a call")
    return ParsedCall.of(name, arguments)


class ForcedToolParser:
    """The :class:`~openai_frontend.parsing.base.ToolParser` for a forced tool choice.

    The reply is one JSON value, useful only once complete, so calls come at the end.
    """

    def __init__(self, forced_name: str | None) -> None:
        self._name = forced_name
        self._parts: list[str] = []
        self._numbering = CallNumbering()

    def feed(self, text: str) -> ParsedDelta:
        self._parts.append(text)
        return ParsedDelta()

    def finish(self) -> ParsedDelta:
        text = "".join(self._parts)
        self._parts = []
        calls = parse_forced_output(text, self._name)
        if calls is None:
            return ParsedDelta(content=text)
        return ParsedDelta(tool_calls=self._numbering.deltas(calls))
