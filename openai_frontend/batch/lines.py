"""A batch input file read into lines to run or lines already failed, and the JSONL
lines the output and error files hold (OpenAI's shape).

Reading is a pure function of the file and the endpoint, so a restart that reads the
same file again gets the same line numbers and never reruns a line that has a result.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

#: What a batch may call, as OpenAI names them.
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")


@dataclass(frozen=True)
class Planned:
    """Line ``line`` (0-based, blank lines not counted) of the input file: a request to
    send (``body``), or a line that cannot be sent (``error``: code, message)."""

    line: int
    custom_id: str | None
    body: dict[str, Any] | None = None
    error: tuple[str, str] | None = None


def read_lines(content: bytes, endpoint: str) -> list[Planned]:
    """Each non-blank line checked as OpenAI checks a batch line: a JSON object with a
    unique string ``custom_id``, ``method: POST``, ``url`` equal to the batch's
    endpoint and an object ``body`` (not streamed). A bad line becomes an error line;
    the others still run."""
    text = content.decode("utf-8", errors="replace")
    planned: list[Planned] = []
    seen: set[str] = set()
    for number, raw in enumerate(line for line in text.splitlines() if line.strip()):
        planned.append(_check(number, raw, endpoint, seen))
    return planned


def _check(number: int, raw: str, endpoint: str, seen: set[str]) -> Planned:
    try:
        item = json.loads(raw)
    except ValueError as error:
        return Planned(number, None, error=("invalid_json_line", f"Line is not JSON: {error}."))
    if not isinstance(item, dict):
        return Planned(number, None, error=("invalid_json_line", "Line is not a JSON object."))
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str):
        return Planned(number, None, error=("missing_custom_id", "custom_id must be a string."))

    def bad(code: str, message: str) -> Planned:
        return Planned(number, custom_id, error=(code, message))

    if custom_id in seen:
        return bad("duplicate_custom_id", f"custom_id '{custom_id}' is used by an earlier line.")
    seen.add(custom_id)
    if item.get("method") != "POST":
        return bad("invalid_method", "method must be 'POST'.")
    if item.get("url") != endpoint:
        return bad("invalid_url", f"url must be the batch's endpoint, '{endpoint}'.")
    body = item.get("body")
    if not isinstance(body, dict):
        return bad("invalid_body", "body must be a JSON object.")
    if body.get("stream"):
        return bad("invalid_body", "A batch line cannot stream: drop 'stream'.")
    return Planned(number, custom_id, body=body)


def request_id() -> str:
    return f"batch_req_{uuid.uuid4().hex}"


def answered_line(custom_id: str | None, status: int, request: str, body: Any) -> str:
    """The output (or, not 2xx, error) file line of a request the endpoint answered."""
    response = {"status_code": status, "request_id": request, "body": body}
    return json.dumps({"id": request, "custom_id": custom_id, "response": response, "error": None})


def error_line(planned: Planned) -> str:
    """The error file line of a line that was never sent."""
    code, message = planned.error or ("invalid_request", "invalid line")
    error = {"code": code, "message": message, "line": planned.line + 1}
    return json.dumps(
        {"id": request_id(), "custom_id": planned.custom_id, "response": None, "error": error}
    )
