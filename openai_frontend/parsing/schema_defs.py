"""Tool schemas' shared definitions (``$defs``, ``definitions``) moved to the root of a
schema that nests them.

``tool_choice: "required"`` embeds each tool's ``parameters`` under
``items.anyOf[i].properties.arguments``. Every pydantic-made schema keeps its models in
``$defs`` and points at them with ``{"$ref": "#/$defs/Name"}``: a pointer from the root,
which no longer finds them once the schema is nested, and both grammar backends refuse
it. So the definitions go to the root, as vLLM does. Two tools that define the same name
differently keep both: the later tool's definitions are all renamed
``<function>_<Name>`` and its pointers rewritten. Other pointers into a tool's own
schema (``#/properties/...``, ``#``) are not rewritten: pydantic and the OpenAI SDKs do
not write them.
"""

from __future__ import annotations

from typing import Any

#: The keywords that hold definitions, each hoisted to the same keyword at the root.
DEFINITION_KEYWORDS = ("$defs", "definitions")


class HoistedDefinitions:
    """Collects the definitions of several tools' schemas for one root schema."""

    def __init__(self) -> None:
        self.root: dict[str, dict[str, Any]] = {}

    def take(self, function: str, schema: dict[str, Any]) -> dict[str, Any]:
        """``schema`` without its definitions (kept here), its pointers rewritten if
        its definitions had to be renamed. The client's schema is not changed."""
        found = {
            keyword: schema[keyword]
            for keyword in DEFINITION_KEYWORDS
            if isinstance(schema.get(keyword), dict)
        }
        if not found:
            return schema
        rest = {key: value for key, value in schema.items() if key not in DEFINITION_KEYWORDS}
        if not self._clashes(found):
            for keyword, definitions in found.items():
                self.root.setdefault(keyword, {}).update(definitions)
            return rest
        renames = {
            f"#/{keyword}/{name}": f"#/{keyword}/{self._reserve(keyword, f'{function}_{name}')}"
            for keyword, definitions in found.items()
            for name in definitions
        }
        for keyword, definitions in found.items():
            for name, definition in definitions.items():
                placed = renames[f"#/{keyword}/{name}"].rsplit("/", 1)[1]
                self.root[keyword][placed] = _with_refs_renamed(definition, renames)
        return _with_refs_renamed(rest, renames)

    def add_to(self, schema: dict[str, Any]) -> dict[str, Any]:
        """``schema`` with the collected definitions at its root."""
        return {**schema, **self.root}

    def _clashes(self, found: dict[str, dict[str, Any]]) -> bool:
        """Whether a name is already held by a different definition."""
        return any(
            self.root.get(keyword, {}).get(name, definition) != definition
            for keyword, definitions in found.items()
            for name, definition in definitions.items()
        )

    def _reserve(self, keyword: str, name: str) -> str:
        """``name``, or ``name_2``, ``name_3``...: the first one not yet taken."""
        table = self.root.setdefault(keyword, {})
        placed, suffix = name, 1
        while placed in table:
            suffix += 1
            placed = f"{name}_{suffix}"
        table[placed] = {}
        return placed


def _with_refs_renamed(value: Any, renames: dict[str, str]) -> Any:
    """A copy of ``value`` whose ``$ref`` strings follow ``renames`` (a ref to a
    sub-path of a renamed definition included)."""
    if isinstance(value, list):
        return [_with_refs_renamed(item, renames) for item in value]
    if not isinstance(value, dict):
        return value
    copied = {key: _with_refs_renamed(item, renames) for key, item in value.items()}
    ref = copied.get("$ref")
    if isinstance(ref, str):
        copied["$ref"] = _renamed(ref, renames)
    return copied


def _renamed(ref: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        if ref == old or ref.startswith(old + "/"):
            return new + ref[len(old) :]
    return ref
