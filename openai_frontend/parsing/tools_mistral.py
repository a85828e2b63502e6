"""``mistral``: Mistral tool calls after the ``[TOOL_CALLS]`` marker.

Two generations of the format, both handled:

    [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}, {...}]
    [TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}      (tokenizer v11 and later)

The marker is a special token: it reaches the text only when the server decodes with
``skip_special_tokens: false`` (vLLM's Mistral tokenizer keeps it). A list that is not
a list of call objects is content, marker included. The JSON is decoded when it closes
(its long containers in pieces as they stream, see :mod:`.assembly`); from the first
character that no such JSON could have (see :mod:`.scanning`), the block is given up:
its text so far is content, and a later marker may open a call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from openai_frontend.parsing.assembly import JSON, Assembly, Hole
from openai_frontend.parsing.base import ParsedCall
from openai_frontend.parsing.scanning import JsonScan
from openai_frontend.parsing.strict import json_arguments, tag
from openai_frontend.parsing.tools_block import (
    BlockToolParser,
    Closed,
    call_from_object,
    call_with_arguments,
)

MARKER = "[TOOL_CALLS]"
ARGS = "[ARGS]"
_SPACE = re.compile(r"\s*")
_NAME = re.compile(r"[\w.-]*")


class MistralToolParser(BlockToolParser):
    opens = (MARKER,)
    call_triggers = (MARKER,)

    @classmethod
    def call_tags(cls, name: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
        """Both generations: ``[TOOL_CALLS]name[ARGS]{...}``, and the call object of a
        ``[TOOL_CALLS] [...]`` list (which :meth:`section_tags` puts in its list)."""
        arguments = json_arguments(schema)
        return [
            tag(f"{MARKER}{name}{ARGS}", arguments, ""),
            tag(f'{{"name": "{name}", "arguments": ', arguments, "}"),
        ]

    @classmethod
    def section_tags(cls, calls: list[dict[str, Any]], single: bool) -> list[dict[str, Any]]:
        named = [call for call in calls if call["begin"].startswith(MARKER)]
        objects = [call for call in calls if not call["begin"].startswith(MARKER)]
        listed = {
            "type": "tags_with_separator",
            "tags": objects,
            "separator": ", ",
            "at_least_one": True,
            "stop_after_first": single,
        }
        return [*named, *(tag(f"{MARKER}{space}[", listed, "]") for space in ("", " "))]

    def _enter_block(self, opened: str) -> None:
        super()._enter_block(opened)
        self._scan: JsonScan | None = None
        self._name: str | None = None
        self._name_start = -1

    def _close(self, body: str) -> Closed | None:
        if self._scan is None:
            given_up = self._read_head(body)
            if self._scan is None:
                return given_up
        found = self._scan.scan(body)
        if found is None:
            return None
        if not found.closed:
            return None, found.end
        skeleton = self._assembly.skeleton(body, found.start, found.end)
        try:
            value = json.loads(skeleton.text)
            if self._name is None:
                return _call_list(value, skeleton.holes), found.end
            return [call_with_arguments(self._name, value, skeleton.holes)], found.end
        except (ValueError, RecursionError):
            return None, found.end

    def _read_head(self, body: str) -> Closed | None:
        """Before the JSON: ``[`` (a list of calls) or ``name[ARGS]``; sets the scan.

        Reads on from ``self._cursor``, so a long head is read once. Anything else: not
        a call, and the marker alone becomes content.
        """
        if self._name_start < 0:
            self._cursor = _SPACE.match(body, self._cursor).end()
            if self._cursor == len(body):
                return None
            if body[self._cursor] == "[":
                self._assembly = Assembly(JSON, cut_from=3)  # the call objects are read
                self._scan = JsonScan(self._cursor, openers="[", assembly=self._assembly)
                return None
            self._name_start = self._cursor
        self._cursor = _NAME.match(body, self._cursor).end()
        after = body[self._cursor : self._cursor + len(ARGS)]
        if after == ARGS and self._cursor > self._name_start:
            self._name = body[self._name_start : self._cursor]
            self._assembly = Assembly(JSON, cut_from=1)  # the arguments, all of it
            self._scan = JsonScan(self._cursor + len(ARGS), openers="{", assembly=self._assembly)
            return None
        if len(after) < len(ARGS) and ARGS.startswith(after) and self._cursor > self._name_start:
            return None  # a name, maybe a piece of [ARGS]: wait
        return None, 0


def _call_list(value: Any, holes: Sequence[Hole]) -> list[ParsedCall] | None:
    if not isinstance(value, list) or not value:
        return None
    return [call_from_object(item, holes=holes) for item in value]
