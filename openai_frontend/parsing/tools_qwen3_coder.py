"""``qwen3_coder``: Qwen3-Coder's XML-like calls, one argument per element.

    <tool_call>
    <function=get_weather>
    <parameter=city>
    Paris
    </parameter>
    <parameter=days>
    3
    </parameter>
    </function>
    </tool_call>

A value is the element's text without the newline on each side; its JSON type comes from
the tool's schema (:mod:`.argument_values`). Text outside the blocks is content; a block
that is not this shape, or calls an undeclared function, is content, tags included.
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
_FUNCTION = re.compile(r"\s*<function=([^>\s]+)>(.*?)</function>\s*", re.DOTALL)
_PARAMETER = re.compile(r"\s*<parameter=([^>\s]+)>\n?(.*?)\n?</parameter>\s*", re.DOTALL)


class Qwen3CoderToolParser(BlockToolParser):
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
        function = _FUNCTION.fullmatch(body[:at])
        if function is None:
            return None, end
        name = function.group(1)
        try:
            arguments = _arguments(function.group(2), self._schemas.get(name) or {})
            return [ParsedCall.of(name, arguments)], end
        except ValueError:
            return None, end

    @classmethod
    def call_tags(cls, name: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
        arguments = json_arguments(schema, "qwen_xml")
        return [tag(f"{OPEN}\n<function={name}>\n", arguments, f"\n</function>\n{CLOSE}")]


def _arguments(text: str, schema: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    position = 0
    while position < len(text):
        parameter = _PARAMETER.match(text, position)
        if parameter is None:
            if text[position:].strip():
                raise ValueError("not a parameter element")
            break
        key, value = parameter.group(1), parameter.group(2)
        arguments[key] = argument_value(schema, key, value)
        position = parameter.end()
    return arguments
