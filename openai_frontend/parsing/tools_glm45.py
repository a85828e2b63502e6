"""``glm45``: GLM-4.5 / GLM-4.6 calls, the name then key / value pairs.

    <tool_call>get_weather
    <arg_key>city</arg_key>
    <arg_value>Paris</arg_value>
    </tool_call>

A value's JSON type comes from the tool's schema (:mod:`.argument_values`). Text outside
the blocks is content; a block that is not this shape, or calls an undeclared function,
is content, tags included.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from openai_frontend.parsing.argument_values import argument_value, declared_schemas
from openai_frontend.parsing.base import ParsedCall
from openai_frontend.parsing.strict import StrictSchemas, json_arguments, tag
from openai_frontend.parsing.tools_block import BlockToolParser, Closed

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
_NAME = re.compile(r"\s*([^\s<]+)\s*")
_PAIR = re.compile(r"<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>\s*", re.DOTALL)


class Glm45ToolParser(BlockToolParser):
    opens = (OPEN,)
    call_triggers = (OPEN,)

    def __init__(
        self, declared: Collection[str] | None = None, strict: StrictSchemas | None = None
    ) -> None:
        super().__init__(declared, strict)
        self._schemas = declared_schemas(declared)

    def _close(self, body: str) -> Closed | None:
        at = self._find_end(body, CLOSE)
        if at is None:
            return None
        end = at + len(CLOSE)
        block = body[:at]
        name = _NAME.match(block)
        if name is None:
            return None, end
        try:
            arguments = _pairs(block, name.end(), self._schemas.get(name.group(1)) or {})
            return [ParsedCall.of(name.group(1), arguments)], end
        except ValueError:
            return None, end

    @classmethod
    def call_tags(cls, name: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
        return [tag(f"{OPEN}{name}\n", json_arguments(schema, "glm_xml"), CLOSE)]


def _pairs(block: str, position: int, schema: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    while position < len(block):
        pair = _PAIR.match(block, position)
        if pair is None:
            raise ValueError("not an argument pair")
        arguments[pair.group(1).strip()] = argument_value(
            schema, pair.group(1).strip(), pair.group(2)
        )
        position = pair.end()
    return arguments
