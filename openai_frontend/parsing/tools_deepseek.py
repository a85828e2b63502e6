"""``deepseek_v3`` and ``deepseek_v31``: DeepSeek's tool calls, in special tokens.

    Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>
    {"city": "Paris"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>

That is V3.1's call, on one line (name, separator, arguments). V3 and R1 write the type first, then
the name and the arguments in a fenced JSON block::

    <｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather
    ```json
    {"city": "Paris"}
    ```<｜tool▁call▁end｜>

One section holds one or more calls; text before it is content. The markers are special
tokens: they reach the text because tool requests decode with ``skip_special_tokens:
false``. A section that does not parse, or calls an undeclared function, is content.
"""

from __future__ import annotations

import json
import re
from typing import Any

from openai_frontend.parsing.base import ParsedCall
from openai_frontend.parsing.strict import calls_section, json_arguments, tag
from openai_frontend.parsing.tools_block import BlockToolParser, Closed

CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
CALLS_END = "<｜tool▁calls▁end｜>"
CALL_BEGIN = "<｜tool▁call▁begin｜>"
CALL_END = "<｜tool▁call▁end｜>"
SEP = "<｜tool▁sep｜>"
_CALL = re.compile(
    r"\s*<｜tool▁call▁begin｜>(.*?)<｜tool▁sep｜>(.*?)<｜tool▁call▁end｜>\s*", re.DOTALL
)
#: V3's part after the separator: the name, then the arguments fenced as JSON.
_FENCED = re.compile(r"([^\s`]+)\s*```(?:json)?\s*(.*?)\s*```", re.DOTALL)


class DeepSeekV31ToolParser(BlockToolParser):
    opens = (CALLS_BEGIN,)
    call_triggers = (CALLS_BEGIN,)

    @classmethod
    def call_tags(cls, name: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
        return [tag(f"{CALL_BEGIN}{name}{SEP}", json_arguments(schema), CALL_END)]

    @classmethod
    def section_tags(cls, calls: list[dict[str, Any]], single: bool) -> list[dict[str, Any]]:
        return calls_section(CALLS_BEGIN, CALLS_END, calls, single)

    def _close(self, body: str) -> Closed | None:
        at = self._find_end(body, CALLS_END)
        if at is None:
            return None
        end = at + len(CALLS_END)
        try:
            return self._section(body[:at]), end
        except ValueError:  # json.JSONDecodeError is a ValueError
            return None, end

    def _section(self, section: str) -> list[ParsedCall]:
        calls, position = [], 0
        while position < len(section):
            match = _CALL.match(section, position)
            if match is None:
                raise ValueError("not a call")
            calls.append(self._call(match.group(1).strip(), match.group(2)))
            position = match.end()
        if not calls:
            raise ValueError("an empty section")
        return calls

    def _call(self, head: str, rest: str) -> ParsedCall:
        return _object_call(head, rest)


class DeepSeekV3ToolParser(DeepSeekV31ToolParser):
    @classmethod
    def call_tags(cls, name: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
        begin = f"{CALL_BEGIN}function{SEP}{name}\n```json\n"
        return [tag(begin, json_arguments(schema), f"\n```{CALL_END}")]

    def _call(self, head: str, rest: str) -> ParsedCall:
        fenced = _FENCED.fullmatch(rest.strip())
        if head != "function" or fenced is None:
            raise ValueError("not a V3 call")
        return _object_call(fenced.group(1), fenced.group(2))


def _object_call(name: str, arguments: str) -> ParsedCall:
    value = json.loads(arguments)
    if not name or not isinstance(value, dict):
        raise ValueError("arguments are not an object")
    return ParsedCall.of(name, value)
