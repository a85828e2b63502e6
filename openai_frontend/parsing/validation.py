"""Request checks for ``tools``, ``tool_choice`` and tool messages.

Each failure is an :class:`~openai_frontend.errors.APIError` naming the parameter, as
OpenAI does (``tools[0].function.parameters``, ``messages.[2].tool_call_id``), so a bad
request is a 400 before any token is generated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.validators import validator_for

from openai_frontend.errors import APIError
from openai_frontend.parsing.forced import forced_function_name

#: OpenAI's rule for function names (and for ``response_format.json_schema.name``).
NAME_RULE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_MODES = ("none", "auto", "required")


def validate_tools(
    tools: list[dict[str, Any]] | None,
    tool_choice: str | dict[str, Any] | None,
    parallel_tool_calls: bool | None = None,
) -> None:
    if parallel_tool_calls is not None and not tools:
        raise APIError(
            "parallel_tool_calls is only allowed when 'tools' are specified.",
            param="parallel_tool_calls",
        )
    names: set[str] = set()
    for index, tool in enumerate(tools or []):
        name = _validate_tool(tool, f"tools[{index}]")
        if name in names:
            raise APIError(
                f"Duplicate function name {name!r} in tools.",
                param=f"tools[{index}].function.name",
            )
        names.add(name)
    _validate_choice(tool_choice, names, has_tools=bool(tools))


def _validate_tool(tool: Any, param: str) -> str:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise APIError("Each tool must have type 'function'.", param=f"{param}.type")
    function = tool.get("function")
    if not isinstance(function, dict):
        raise APIError("A function tool needs a 'function' object.", param=f"{param}.function")
    name = function.get("name")
    if not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        raise APIError(
            "A function name must be 1 to 64 characters of a-z, A-Z, 0-9, _ and -.",
            param=f"{param}.function.name",
        )
    if "parameters" in function:
        _validate_parameters(name, function["parameters"], f"{param}.function.parameters")
    return name


def _validate_parameters(name: str, schema: Any, param: str) -> None:
    if not isinstance(schema, dict):
        raise APIError(f"Invalid schema for function {name!r}: not an object.", param=param)
    if schema.get("type", "object") != "object":
        raise APIError(
            f"Invalid schema for function {name!r}: schema must be a JSON Schema of "
            f"'type: \"object\"', got 'type: {schema.get('type')!r}'.",
            param=param,
        )
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as error:
        raise APIError(
            f"Invalid schema for function {name!r}: {error.message}", param=param
        ) from None
    except RecursionError:  # the metaschema check recurses a few frames per level
        raise APIError(
            f"Invalid schema for function {name!r}: nested too deeply to check.", param=param
        ) from None


def _validate_choice(choice: str | dict | None, names: set[str], has_tools: bool) -> None:
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in _MODES:
            raise APIError(
                f"Invalid value for 'tool_choice': {choice!r}; expected one of "
                "'none', 'auto', 'required' or a named function.",
                param="tool_choice",
            )
        if choice == "required" and not has_tools:
            raise APIError(
                "tool_choice 'required' is only allowed when 'tools' are specified.",
                param="tool_choice",
            )
        return
    name = forced_function_name(choice)
    if choice.get("type") != "function" or name is None:
        raise APIError(
            "tool_choice must be {'type': 'function', 'function': {'name': ...}}.",
            param="tool_choice",
        )
    if name not in names:
        raise APIError(
            f"tool_choice names function {name!r}, which is not in 'tools'.",
            param="tool_choice",
        )


def validate_tool_messages(messages: Sequence[Any]) -> None:
    """A ``tool`` message answers a call, so it must say which (``tool_call_id``)."""
    for index, message in enumerate(messages):
        if _field(message, "role") == "tool" and not _field(message, "tool_call_id"):
            raise APIError(
                "Missing parameter 'tool_call_id': messages with role 'tool' must have "
                "a 'tool_call_id'.",
                param=f"messages.[{index}].tool_call_id",
            )


def _field(message: Any, name: str) -> Any:
    """Messages arrive as pydantic models from the router, as dicts from elsewhere."""
    return message.get(name) if isinstance(message, dict) else getattr(message, name, None)
