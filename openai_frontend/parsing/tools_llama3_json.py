"""``llama3_json``: Llama 3.1 / 3.2 / 3.3 JSON tool calls, the whole reply.

    {"name": "get_weather", "parameters": {"city": "Paris"}}
    <|python_tag|>{"name": "a", "parameters": {}}; {"name": "b", "parameters": {}}

A call is recognised only at the start of the reply (after an optional
``<|python_tag|>``, which reaches the text only with ``skip_special_tokens: false``)
and after another call, separated by ``;`` or by whitespace alone. A JSON object that
is not a call (the user asked for JSON) is content, as is any text after the calls.
The object is decoded when its ``{`` closes, its long containers in pieces as they
stream (see :mod:`.assembly`); text that cannot be JSON (``{Note: ...``) streams as
content at once (see :mod:`.scanning`).
"""

from __future__ import annotations

import json

from openai_frontend.parsing.assembly import JSON, Assembly
from openai_frontend.parsing.scanning import JsonScan
from openai_frontend.parsing.tools_block import (
    BlockToolParser,
    Closed,
    call_from_object,
)

PYTHON_TAG = "<|python_tag|>"


class Llama3JsonToolParser(BlockToolParser):
    def _sniff(self, head: str) -> int | None:
        body = head
        if self._numbering.count and head.startswith(";"):
            body = head[1:].lstrip()
            if not body:
                return None
        if body.startswith(PYTHON_TAG):
            return len(head) - len(body) + len(PYTHON_TAG)
        if body.startswith("{"):
            return len(head) - len(body)
        return None if PYTHON_TAG.startswith(body) else -1

    def _enter_block(self, opened: str) -> None:
        super()._enter_block(opened)
        self._assembly = Assembly(JSON, cut_from=2)
        self._scan = JsonScan(openers="{", assembly=self._assembly)

    def _close(self, body: str) -> Closed | None:
        found = self._scan.scan(body)
        if found is None:
            return None
        if not found.closed:
            return None, found.end
        skeleton = self._assembly.skeleton(body, found.start, found.end)
        try:
            value = json.loads(skeleton.text)
            call = call_from_object(value, ("parameters", "arguments"), skeleton.holes)
            return [call], found.end
        except (ValueError, RecursionError):
            return None, found.end
