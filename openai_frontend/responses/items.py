"""``input`` items: checked, and normalised into the stored shape ``input_items`` lists.

A client may send ``"hi"``, a bare ``{"role", "content"}`` message, or full items with
ids and statuses; all become the same item list (OpenAI's ``ItemResource`` shapes), so
a stored conversation can be read back, listed and continued through one code path.
Each failure names the exact path, e.g. ``input[2].content[0].type``.
"""

from __future__ import annotations

import random
from typing import Any

from openai_frontend.errors import APIError

Item = dict[str, Any]

_INPUT_ROLES = ("user", "system", "developer")
_MESSAGE_FIELDS = frozenset({"type", "role", "content", "id", "status", "phase"})
_CALL_FIELDS = frozenset({"type", "call_id", "name", "arguments", "id", "status"})
_OUTPUT_FIELDS = frozenset({"type", "call_id", "output", "id", "status"})
_REASONING_FIELDS = frozenset({"type", "id", "summary", "content", "encrypted_content", "status"})
_REFERENCE_FIELDS = frozenset({"type", "id"})
#: Each call item's kind: the fields it may carry, and the prefix of an id made for it.
_CALL_KINDS = {
    "function_call": (_CALL_FIELDS, "fc"),
    "function_call_output": (_OUTPUT_FIELDS, "fco"),
}


def item_id(prefix: str) -> str:
    """A fresh item id. Item ids name parts of a response and guard nothing (a stored
    response is found by its own id and its owner), so they come from ``random``, not
    ``uuid4``: its ``os.urandom`` call releases and retakes the GIL, and a thread
    naming 50,000 input items that way kept the event loop from ever taking it."""
    return f"{prefix}_{random.getrandbits(128):032x}"


def normalise_input(value: str | list[Item]) -> list[Item]:
    """The request's ``input`` as stored items (a string is one user message)."""
    if isinstance(value, str):
        return [_message("user", [{"type": "input_text", "text": value}], None)]
    if not value:
        raise APIError("input must not be an empty list", param="input")
    return [_item(item, f"input[{index}]") for index, item in enumerate(value)]


def _item(item: Any, path: str) -> Item:
    if not isinstance(item, dict):
        raise APIError("Each input item must be an object.", param=path)
    kind = item.get("type", "message")
    if kind == "message":
        return _message_item(item, path)
    if kind in _CALL_KINDS:
        return _call_item(item, kind, path)
    if kind == "reasoning":
        _check_fields(item, _REASONING_FIELDS, path)
        return {**item, "id": _optional_str(item, "id", path) or item_id("rs")}
    if kind == "item_reference":  # resolved from the store by the router
        _check_fields(item, _REFERENCE_FIELDS, path)
        return {"type": kind, "id": _str(item, "id", path)}
    raise APIError(
        f"Input items of type {kind!r} are not supported by this server "
        "(supported: message, function_call, function_call_output, reasoning, "
        "item_reference).",
        param=f"{path}.type",
    )


def _call_item(item: Item, kind: str, path: str) -> Item:
    """A function call or its output: both are stored completed, under the client's id
    or a new one, and tied together by ``call_id``."""
    fields, prefix = _CALL_KINDS[kind]
    _check_fields(item, fields, path)
    stored = {
        "id": _optional_str(item, "id", path) or item_id(prefix),
        "type": kind,
        "call_id": _str(item, "call_id", path),
    }
    if kind == "function_call":
        stored |= {"name": _str(item, "name", path), "arguments": _str(item, "arguments", path)}
    else:
        stored["output"] = _output_text(item.get("output"), f"{path}.output")
    return {**stored, "status": "completed"}


def _message_item(item: Item, path: str) -> Item:
    _check_fields(item, _MESSAGE_FIELDS, path)
    role = item.get("role")
    if role not in (*_INPUT_ROLES, "assistant"):
        raise APIError(
            "role must be one of 'user', 'system', 'developer' or 'assistant'.",
            param=f"{path}.role",
        )
    part_type = "output_text" if role == "assistant" else "input_text"
    content = item.get("content")
    if isinstance(content, str):
        parts = [{"type": part_type, "text": content}]
    elif isinstance(content, list):
        parts = [_part(part, role, f"{path}.content[{i}]") for i, part in enumerate(content)]
    else:
        raise APIError("content must be a string or a list of parts.", param=f"{path}.content")
    return _message(role, parts, _optional_str(item, "id", path))


def _part(part: Any, role: str, path: str) -> Item:
    # OpenAI's easy messages may give an assistant turn input_text parts too.
    expected = "output_text" if role == "assistant" else "input_text"
    allowed = ("output_text", "input_text", "refusal") if role == "assistant" else (expected,)
    if not isinstance(part, dict) or part.get("type") not in allowed:
        kind = part.get("type") if isinstance(part, dict) else None
        raise APIError(
            f"Content parts of type {kind!r} are not supported in a {role} message "
            f"by this server (supported: {', '.join(allowed)}).",
            param=f"{path}.type",
        )
    if part["type"] == "refusal":
        return {"type": "refusal", "refusal": _str(part, "refusal", path)}
    text = _str(part, "text", path)
    if expected == "output_text":
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"type": "input_text", "text": text}


def _message(role: str, parts: list[Item], id_: str | None) -> Item:
    if role == "assistant":
        parts = [
            {"annotations": [], "logprobs": [], **part} if part["type"] == "output_text" else part
            for part in parts
        ]
    return {
        "id": id_ or item_id("msg"),
        "type": "message",
        "role": role,
        "content": parts,
        "status": "completed",
    }


def _output_text(output: Any, path: str) -> str:
    """A tool's output: a string, or a list of ``input_text`` parts joined."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = []
        for index, part in enumerate(output):
            if not isinstance(part, dict) or part.get("type") != "input_text":
                raise APIError(
                    "Tool output parts must be input_text.", param=f"{path}[{index}].type"
                )
            texts.append(_str(part, "text", f"{path}[{index}]"))
        return "".join(texts)
    raise APIError("output must be a string or a list of input_text parts.", param=path)


def _check_fields(item: Item, allowed: frozenset[str], path: str) -> None:
    for key in item:
        if key not in allowed:
            raise APIError(f"Unrecognized field in an input item: {key}", param=f"{path}.{key}")


def _str(item: Item, key: str, path: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise APIError(f"'{key}' must be a string.", param=f"{path}.{key}")
    return value


def _optional_str(item: Item, key: str, path: str) -> str | None:
    return None if item.get(key) is None else _str(item, key, path)
