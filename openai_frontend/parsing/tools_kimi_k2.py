"""``kimi_k2``: Kimi-K2's call section, in special tokens.

    <|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0
    <|tool_call_argument_begin|>{"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>

(on one line). Each call's id is ``functions.<name>:<n>``: the name is between the dot
and the colon. The markers are special tokens: they reach the text because tool
requests decode with ``skip_special_tokens: false``. Text before the section is
content; a section that does not parse, or calls an undeclared function, is content.
"""

from __future__ import annotations

import json
import re
from typing import Any

from openai_frontend.parsing.base import ParsedCall
from openai_frontend.parsing.strict import calls_section, const, json_arguments, sequence, tag
from openai_frontend.parsing.tools_block import BlockToolParser, Closed

SECTION_BEGIN = "<|tool_calls_section_begin|>"
SECTION_END = "<|tool_calls_section_end|>"
CALL_BEGIN = "<|tool_call_begin|>"
ARGUMENT_BEGIN = "<|tool_call_argument_begin|>"
CALL_END = "<|tool_call_end|>"
_CALL = re.compile(
    r"\s*<\|tool_call_begin\|>\s*(?:functions\.)?([^\s:<]+)(?::\d+)?\s*"
    r"<\|tool_call_argument_begin\|>(.*?)<\|tool_call_end\|>\s*",
    re.DOTALL,
)


class KimiK2ToolParser(BlockToolParser):
    opens = (SECTION_BEGIN,)
    call_triggers = (SECTION_BEGIN,)

    @classmethod
    def call_tags(cls, name: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
        index = {"type": "regex", "pattern": r"\d+"}
        content = sequence(index, const(ARGUMENT_BEGIN), json_arguments(schema))
        return [tag(f"{CALL_BEGIN}functions.{name}:", content, CALL_END)]

    @classmethod
    def section_tags(cls, calls: list[dict[str, Any]], single: bool) -> list[dict[str, Any]]:
        return calls_section(SECTION_BEGIN, SECTION_END, calls, single)

    def _close(self, body: str) -> Closed | None:
        at = self._find_end(body, SECTION_END)
        if at is None:
            return None
        end = at + len(SECTION_END)
        try:
            return _section(body[:at]), end
        except ValueError:  # json.JSONDecodeError is a ValueError
            return None, end


def _section(section: str) -> list[ParsedCall]:
    calls, position = [], 0
    while position < len(section):
        match = _CALL.match(section, position)
        if match is None:
            raise ValueError("not a call")
        arguments = json.loads(match.group(2))
        if not isinstance(arguments, dict):
            raise ValueError("arguments are not an object")
        calls.append(ParsedCall.of(match.group(1), arguments))
        position = match.end()
    if not calls:
        raise ValueError("an empty section")
    return calls
