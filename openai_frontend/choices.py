"""Accumulate each choice's deltas into the pieces a response object needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from engines.base import Delta, TokenLogprob


@dataclass(frozen=True)
class Reply:
    """What a response body and its stream chunks share."""

    id: str
    created: int
    model: str
    prompt_tokens: int
    n: int
    logprobs: bool

    def head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}


@dataclass
class Choice:
    text_parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    completion_tokens: int = 0
    finish_reason: str | None = None

    def add(self, delta: Delta) -> None:
        self.text_parts.append(delta.text)
        if delta.logprobs:
            self.logprobs.extend(delta.logprobs)
        self.completion_tokens = delta.completion_tokens
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def finish_reason(reason: str | None) -> str:
    """OpenAI knows stop and length; an aborted sequence reports where it stopped."""
    return "length" if reason == "length" else "stop"
