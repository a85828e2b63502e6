"""``mistral``: Mistral tool calls after the ``[TOOL_CALLS]`` marker.

Two generations of the format, both handled:

    [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}, {...}]
    [TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}      (tokenizer v11 and later)

The marker is a special token: it reaches the text only when the server decodes with
``skip_special_tokens: false`` (vLLM's Mistral tokenizer keeps it). A list that is not
a list of call objects is content, marker included.
"""

from __future__ import annotations

import re
from typing import Any

from openai_frontend.parsing.base import ParsedCall
from openai_frontend.parsing.tools_block import (
    BlockToolParser,
    Closed,
    call_from_object,
)

MARKER = "[TOOL_CALLS]"
ARGS = "[ARGS]"
_NAMED = re.compile(r"\s*([\w.-]+)\[ARGS\]")
_NAME_SO_FAR = re.compile(r"\s*[\w.-]*(\[.*)?", re.DOTALL)


class MistralToolParser(BlockToolParser):
    opens = (MARKER,)

    def _close(self, body: str) -> Closed | None:
        if body.lstrip().startswith("["):
            return _call_list(self._decode_when_closed(body))
        named = _NAMED.match(body)
        if named:
            return _named_call(named.group(1), self._decode_when_closed(body, named.end()))
        so_far = _NAME_SO_FAR.fullmatch(body)
        if so_far and ARGS.startswith(so_far.group(1) or ""):
            return None  # a name, maybe a piece of [ARGS]: wait
        return None, 0  # not a call: the marker alone becomes content


def _call_list(decoded: tuple[Any, int] | None) -> Closed | None:
    if decoded is None:
        return None
    value, end = decoded
    try:
        if not isinstance(value, list) or not value:
            raise ValueError("not a list of calls")
        return [call_from_object(item) for item in value], end
    except ValueError:
        return None, end


def _named_call(name: str, decoded: tuple[Any, int] | None) -> Closed | None:
    if decoded is None:
        return None
    arguments, end = decoded
    try:
        if not isinstance(arguments, dict):
            raise ValueError("arguments are not an object")
        return [ParsedCall.of(name, arguments)], end
    except ValueError:
        return None, end
