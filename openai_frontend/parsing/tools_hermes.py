"""``hermes``: Hermes 2 Pro / Hermes 3, Qwen2.5 and Qwen3 tool calls.

    Let me look that up.
    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>
    <tool_call>
    {"name": "get_time", "arguments": {"tz": "CET"}}
    </tool_call>

Text outside the blocks is content. A block whose body is not a call object is
returned as content, tags included. The body is scanned as it streams, its long
containers decoded in pieces (see :mod:`.assembly`), so the delta that closes a long
call decodes only a skeleton.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from openai_frontend import jsondecode
from openai_frontend.parsing.assembly import JSON, Assembly, Hole
from openai_frontend.parsing.scanning import Boundary, JsonScan
from openai_frontend.parsing.strict import json_arguments, tag
from openai_frontend.parsing.tools_block import BlockToolParser, Closed, call_from_object

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


class HermesToolParser(BlockToolParser):
    opens = (OPEN,)
    call_triggers = (OPEN,)

    @classmethod
    def call_tags(cls, name: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
        begin = f'{OPEN}\n{{"name": "{name}", "arguments": '
        return [tag(begin, json_arguments(schema), f"}}\n{CLOSE}")]

    def _enter_block(self, opened: str) -> None:
        super()._enter_block(opened)
        self._assembly = Assembly(JSON, cut_from=2)
        self._scan = JsonScan(assembly=self._assembly)
        self._found: Boundary | None = None

    def _close(self, body: str) -> Closed | None:
        if self._found is None:
            self._found = self._scan.scan(body)
        at = self._find_end(body, CLOSE)
        if at is None:
            return None
        end = at + len(CLOSE)
        try:
            value, holes = self._decode(body, at)
            return [call_from_object(value, holes=holes)], end
        except ValueError:  # json.JSONDecodeError is a ValueError
            return None, end

    def _decode(self, body: str, at: int) -> tuple[Any, Sequence[Hole]]:
        """The body before ``at``, decoded: from the scan's skeleton when the body is
        the scanned value alone (JSON whitespace around it), else as a whole."""
        found = self._found
        if (
            found is None
            or not found.closed
            or not _JSON_SPACE.fullmatch(body, 0, found.start)
            or not _JSON_SPACE.fullmatch(body, found.end, at)
        ):
            return jsondecode.loads(body[:at]), ()
        skeleton = self._assembly.skeleton(body, found.start, found.end)
        return jsondecode.loads(skeleton.text), skeleton.holes
