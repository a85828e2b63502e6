"""``hermes``: Hermes 2 Pro / Hermes 3, Qwen2.5 and Qwen3 tool calls.

    Let me look that up.
    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>
    <tool_call>
    {"name": "get_time", "arguments": {"tz": "CET"}}
    </tool_call>

Text outside the blocks is content. A block whose body is not a call object is
returned as content, tags included.
"""

from __future__ import annotations

from openai_frontend import jsondecode
from openai_frontend.parsing.tools_block import BlockToolParser, Closed, call_from_object

OPEN = "<tool_call>"
CLOSE = "</tool_call>"


class HermesToolParser(BlockToolParser):
    opens = (OPEN,)

    def _close(self, body: str) -> Closed | None:
        at = self._find_end(body, CLOSE)
        if at is None:
            return None
        end = at + len(CLOSE)
        try:
            return [call_from_object(jsondecode.loads(body[:at]))], end
        except ValueError:  # json.JSONDecodeError is a ValueError
            return None, end
