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
    #: The tier that served the request, sent back only when the request named one.
    service_tier: str | None = None

    def head(self, obj: str) -> dict:
        head = {"id": self.id, "object": obj, "created": self.created, "model": self.model}
        if self.service_tier is not None:
            head["service_tier"] = self.service_tier
        return head


@dataclass
class Choice:
    text_parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    completion_tokens: int = 0
    finish_reason: str | None = None
    #: Prompt tokens the engine took from its prefix cache for this sequence.
    cached_tokens: int = 0
    #: The prompt's logprobs, when the request asked for them (completions' ``echo``).
    prompt_logprobs: list[TokenLogprob | None] | None = None

    def add(self, delta: Delta) -> None:
        self.text_parts.append(delta.text)
        if delta.prompt_logprobs is not None:
            self.prompt_logprobs = delta.prompt_logprobs
        if delta.logprobs:
            self.logprobs.extend(delta.logprobs)
        self.count(delta)

    def count(self, delta: Delta) -> None:
        """Keep the delta's running counts and finish reason."""
        self.completion_tokens = delta.completion_tokens
        self.cached_tokens = max(self.cached_tokens, delta.cached_prompt_tokens)
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> dict:
    """OpenAI's usage object. ``prompt_tokens_details`` is always there, as OpenAI
    always sends it (vLLM hides it behind ``--enable-prompt-tokens-details``)."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def cached_tokens(choices: list[Choice], n: int) -> int:
    """Cached prompt tokens of a request whose usage counts each prompt once: the first
    choice of each prompt stands for it (its ``n - 1`` siblings share that prompt, and
    reuse whatever the first one put in the cache)."""
    return sum(choice.cached_tokens for choice in choices[::n])


#: The engine's finish reasons (engines.base.FinishReason) as the client sees them.
#: An aborted sequence reports where it stopped. "repetition" (vLLM stopped a looping
#: sequence) is passed through as vLLM's own OpenAI server passes it
#: (``output.finish_reason`` verbatim); it is not in OpenAI's enum, but calling it
#: "stop" would hide that the text was cut. No reason here is a failure: a failed
#: sequence is an EngineError, so an unknown reason is a bug that must not pass as
#: a success either.
_FINISH_REASONS = {"stop": "stop", "length": "length", "abort": "stop", "repetition": "repetition"}


def finish_reason(reason: str | None) -> str:
    if reason is None:
        return "stop"  # the stream ended without a final delta: it stopped there
    try:
        return _FINISH_REASONS[reason]
    except KeyError:
        raise RuntimeError(f"the engine finished a sequence with {reason!r}") from None
