"""Neutral token logprobs in the two shapes OpenAI uses (chat and legacy completions)."""

from __future__ import annotations

from engines.base import TokenLogprob


def _entry(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def chat_logprobs(tokens: list[TokenLogprob]) -> dict:
    """``{"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}``."""
    content = []
    for item in tokens:
        entry = _entry(item.token, item.logprob)
        entry["top_logprobs"] = [_entry(text, lp) for _, text, lp in item.top]
        content.append(entry)
    return {"content": content, "refusal": None}


def completion_logprobs(tokens: list[TokenLogprob], start_offset: int) -> dict:
    """``{tokens, token_logprobs, top_logprobs, text_offset}``; offsets count characters."""
    offsets = []
    offset = start_offset
    for item in tokens:
        offsets.append(offset)
        offset += len(item.token)
    return {
        "tokens": [item.token for item in tokens],
        "token_logprobs": [item.logprob for item in tokens],
        "top_logprobs": [{text: lp for _, text, lp in item.top} for item in tokens],
        "text_offset": offsets,
    }


def echoed_completion_logprobs(
    first: str, prompt: list[TokenLogprob | None], generated: list[TokenLogprob]
) -> dict:
    """Legacy logprobs for ``echo``: the prompt's tokens, the first (``first``, its text)
    with a null logprob and null alternatives as OpenAI and vLLM give it, then the
    generated tokens'."""
    scored = completion_logprobs([item for item in prompt if item is not None], len(first))
    more = completion_logprobs(generated, len(first) + sum(len(t) for t in scored["tokens"]))
    return {
        "tokens": [first, *scored["tokens"], *more["tokens"]],
        "token_logprobs": [None, *scored["token_logprobs"], *more["token_logprobs"]],
        "top_logprobs": [None, *scored["top_logprobs"], *more["top_logprobs"]],
        "text_offset": [0, *scored["text_offset"], *more["text_offset"]],
    }
