"""Parsed deltas -> Responses output items, and the stream events that build them.

One :class:`OutputBuilder` per response. Each parsed delta may open an item (a
``reasoning`` item, an assistant ``message``, a ``function_call``), add to the open one,
or close it and open the next; the events come back in OpenAI's order
(``output_item.added``, ``content_part.added``, deltas, ``*.done``...). A non-streamed
response feeds the very same deltas and keeps only ``output``, so the two can never
disagree.
"""

from __future__ import annotations

from typing import Any

from openai_frontend.parsing.base import ParsedDelta, ToolCallDelta
from openai_frontend.responses.items import Item, item_id

Event = dict[str, Any]

#: Per text item kind: its id prefix, its content part type, and its event family.
_TEXT_KINDS = {
    "message": ("msg", "output_text", "response.output_text"),
    "reasoning": ("rs", "reasoning_text", "response.reasoning_text"),
}

_DELTA_TYPES = {kind: f"{family}.delta" for kind, (_, _, family) in _TEXT_KINDS.items()}


def _text_part(kind: str, text: str) -> Item:
    part_type = _TEXT_KINDS[kind][1]
    if part_type == "output_text":
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": part_type, "text": text}


def _new_text_item(kind: str) -> Item:
    item = {"id": item_id(_TEXT_KINDS[kind][0]), "type": kind, "status": "in_progress"}
    if kind == "message":
        return {**item, "role": "assistant", "content": []}
    return {**item, "summary": [], "content": []}


class OutputBuilder:
    """The response's ``output`` items, built delta by delta."""

    def __init__(self) -> None:
        self.output: list[Item] = []
        self._open: Item | None = None
        self._texts: list[str] = []

    def feed(self, parsed: ParsedDelta) -> list[Event]:
        events: list[Event] = []
        if parsed.reasoning:
            events += self._text("reasoning", parsed.reasoning)
        if parsed.content:
            events += self._text("message", parsed.content)
        for piece in parsed.tool_calls:
            events += self._call(piece)
        return events

    def finish(self, status: str) -> list[Event]:
        """Close the open item with ``status``; an empty reply still gets its message."""
        events: list[Event] = []
        if not self.output:
            events += self._open_item(_new_text_item("message"))
        return events + self._close(status)

    def so_far(self) -> list[Item]:
        """``output`` as it stands mid-reply: the open text item gets its text so far (it
        is only written into the item when the item closes). For a background
        response's GET, and for one cancelled mid-reply."""
        if self._open is None or self._open["type"] not in _TEXT_KINDS:
            return list(self.output)
        partial = {**self._open, "content": [_text_part(self._open["type"], "".join(self._texts))]}
        return [*self.output[:-1], partial]

    @property
    def text(self) -> str:
        """What the SDKs call ``output_text``: every message's text, joined."""
        return "".join(
            part.get("text", "")
            for item in self.output
            if item["type"] == "message"
            for part in item["content"]
        )

    def _text(self, kind: str, text: str) -> list[Event]:
        events: list[Event] = []
        if self._open is None or self._open["type"] != kind:
            events += self._close("completed")
            events += self._open_item(_new_text_item(kind))
        self._texts.append(text)
        open_item = self._open
        event = {  # one dict a token, built once: this runs for every streamed frame
            "type": _DELTA_TYPES[kind],
            "item_id": open_item["id"],
            "output_index": len(self.output) - 1,
            "content_index": 0,
            "delta": text,
        }
        if kind == "message":
            event["logprobs"] = []
        if events:
            events.append(event)
            return events
        return [event]

    def _call(self, piece: ToolCallDelta) -> list[Event]:
        events: list[Event] = []
        if piece.name is not None:
            events += self._close("completed")
            item = {
                "id": item_id("fc"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": piece.id,
                "name": piece.name,
                "arguments": "",
            }
            events += self._open_item(item)
        if piece.arguments and self._open is not None:
            self._open["arguments"] += piece.arguments
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    **self._where(),
                    **{"delta": piece.arguments},
                }
            )
        return events

    def _where(self) -> Event:
        assert self._open is not None
        return {"item_id": self._open["id"], "output_index": len(self.output) - 1}

    def _open_item(self, item: Item) -> list[Event]:
        self.output.append(item)
        self._open, self._texts = item, []
        events = [
            {
                "type": "response.output_item.added",
                "output_index": len(self.output) - 1,
                "item": dict(item),
            }
        ]
        if item["type"] in _TEXT_KINDS:
            events.append(
                {
                    "type": "response.content_part.added",
                    **self._where(),
                    "content_index": 0,
                    "part": _text_part(item["type"], ""),
                }
            )
        return events

    def _close(self, status: str) -> list[Event]:
        item = self._open
        if item is None:
            return []
        where = self._where()
        events: list[Event] = []
        if item["type"] in _TEXT_KINDS:
            text = "".join(self._texts)
            part = _text_part(item["type"], text)
            done = {
                "type": f"{_TEXT_KINDS[item['type']][2]}.done",
                **where,
                "content_index": 0,
                "text": text,
            }
            if item["type"] == "message":
                done["logprobs"] = []
            events += [
                done,
                {"type": "response.content_part.done", **where, "content_index": 0, "part": part},
            ]
            item["content"] = [part]
        else:
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    **where,
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        item["status"] = status
        self._open = None
        events.append(
            {
                "type": "response.output_item.done",
                "output_index": where["output_index"],
                "item": dict(item),
            }
        )
        return events
