"""Arguments written one by one as text (Qwen3-Coder's and GLM-4.5's XML-like calls),
turned back into JSON values by the tool's own schema.

The templates write a string argument as is and any other value as JSON, so the schema
decides: a property typed ``string`` keeps its text (``"007"`` stays a string), any
other is decoded as JSON, and text that is not JSON stays a string rather than losing
the call. A property the schema does not type is decoded the same way.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

#: A function's parameters schema, by function name (empty: names only, or none).
Schemas = Mapping[str, Mapping[str, Any]]


def declared_schemas(declared: Collection[str] | None) -> Schemas:
    """The schemas a parser was given, if it was given a name -> parameters mapping."""
    return declared if isinstance(declared, Mapping) else {}


def argument_value(schema: Mapping[str, Any], name: str, text: str) -> Any:
    """The value of argument ``name`` written as ``text``."""
    properties = schema.get("properties")
    prop = properties.get(name) if isinstance(properties, Mapping) else None
    kind = prop.get("type") if isinstance(prop, Mapping) else None
    if kind == "string" or (isinstance(kind, list) and kind == ["string"]):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text
