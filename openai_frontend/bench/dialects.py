"""What differs between the APIs a run can load: the request body, and where the text,
the usage and a failure sit in a reply or a stream event.

Everything else about a timed request (timing, SSE reading, records) is the same for
every API, so ``client`` asks the dialect only these questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Usage = tuple[int | None, int | None]  # (prompt tokens, output tokens)


class BenchDialect(Protocol):
    path: str

    def body(self, model: str, text: str, max_tokens: int | None, stream: bool) -> dict: ...

    def reply_text(self, body: dict) -> str:
        """The generated text of a whole (non-streamed) reply."""

    def event_text(self, event: dict) -> str:
        """The text one stream event adds ("" for any other event)."""

    def usage(self, body_or_event: dict) -> Usage | None:
        """Token counts, if this reply or event carries them."""

    def event_error(self, event: dict) -> str | None:
        """The message of a stream event that reports a failure."""


def _counts(usage: Any, prompt: str, output: str) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    return usage.get(prompt), usage.get(output)


def _openai_error(event: dict) -> str | None:
    error = event.get("error")
    return (error.get("message") or str(error)) if isinstance(error, dict) else None


@dataclass(frozen=True)
class ChatDialect:
    path: str = "/v1/chat/completions"

    def body(self, model: str, text: str, max_tokens: int | None, stream: bool) -> dict:
        body: dict = {"model": model, "max_tokens": max_tokens}
        body["messages"] = [{"role": "user", "content": text}]
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return body

    def reply_text(self, body: dict) -> str:
        return "".join((c.get("message") or {}).get("content") or "" for c in _choices(body))

    def event_text(self, event: dict) -> str:
        return "".join((c.get("delta") or {}).get("content") or "" for c in _choices(event))

    def usage(self, body_or_event: dict) -> Usage | None:
        return _counts(body_or_event.get("usage"), "prompt_tokens", "completion_tokens")

    event_error = staticmethod(_openai_error)


@dataclass(frozen=True)
class CompletionsDialect(ChatDialect):
    path: str = "/v1/completions"

    def body(self, model: str, text: str, max_tokens: int | None, stream: bool) -> dict:
        body: dict = {"model": model, "max_tokens": max_tokens, "prompt": text}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return body

    def reply_text(self, body: dict) -> str:
        return "".join(choice.get("text") or "" for choice in _choices(body))

    event_text = reply_text


def _choices(body: dict) -> list[dict]:
    return body.get("choices") or []


@dataclass(frozen=True)
class ResponsesDialect:
    """OpenAI's Responses API: text in ``output_text`` parts and ``.delta`` events."""

    path: str = "/v1/responses"

    def body(self, model: str, text: str, max_tokens: int | None, stream: bool) -> dict:
        body: dict = {"model": model, "input": text, "max_output_tokens": max_tokens}
        return {**body, "stream": True, "store": False} if stream else {**body, "store": False}

    def reply_text(self, body: dict) -> str:
        return "".join(
            part.get("text") or ""
            for item in body.get("output") or []
            if item.get("type") == "message"
            for part in item.get("content") or []
            if part.get("type") == "output_text"
        )

    def event_text(self, event: dict) -> str:
        return event.get("delta") or "" if event.get("type") == "response.output_text.delta" else ""

    def usage(self, body_or_event: dict) -> Usage | None:
        body = body_or_event.get("response", body_or_event)
        return _counts(body.get("usage"), "input_tokens", "output_tokens")

    def event_error(self, event: dict) -> str | None:
        if event.get("type") == "error":
            return event.get("message") or str(event)
        if event.get("type") == "response.failed":
            error = (event.get("response") or {}).get("error") or {}
            return error.get("message") or "response.failed"
        return None


@dataclass(frozen=True)
class MessagesDialect:
    """Anthropic's Messages API: ``text`` blocks and ``text_delta`` events; the output
    count comes last, in ``message_delta``."""

    path: str = "/v1/messages"

    def body(self, model: str, text: str, max_tokens: int | None, stream: bool) -> dict:
        body: dict = {"model": model, "max_tokens": max_tokens or 16}
        body["messages"] = [{"role": "user", "content": text}]
        return {**body, "stream": True} if stream else body

    def reply_text(self, body: dict) -> str:
        blocks = body.get("content") or []
        return "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")

    def event_text(self, event: dict) -> str:
        delta = event.get("delta") or {}
        return delta.get("text") or "" if delta.get("type") == "text_delta" else ""

    def usage(self, body_or_event: dict) -> Usage | None:
        kind = body_or_event.get("type")
        if kind == "message_start":
            return _counts((body_or_event.get("message") or {}).get("usage"), "input_tokens", "-")
        return _counts(body_or_event.get("usage"), "input_tokens", "output_tokens")

    def event_error(self, event: dict) -> str | None:
        if event.get("type") != "error":
            return None
        return _openai_error(event) or "error"


#: The APIs a run can load, by the name ``--endpoint`` takes.
DIALECTS: dict[str, BenchDialect] = {
    "chat": ChatDialect(),
    "completions": CompletionsDialect(),
    "responses": ResponsesDialect(),
    "messages": MessagesDialect(),
}
