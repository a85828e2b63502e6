"""Neutral token logprobs in the two shapes OpenAI uses (chat and legacy completions)."""

from __future__ import annotations

from dataclasses import replace

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


def vllm_prompt_logprobs(prompt: list[TokenLogprob | None], top_k: int) -> list[dict | None]:
    """vLLM's ``prompt_logprobs`` reply field: per prompt token, None for the first, else
    ``{token_id: {logprob, rank, decoded_token}}`` for the token itself and its ``top_k``
    most likely alternatives (so ``top_k`` or ``top_k + 1`` entries), as vLLM's
    ``/v1/completions`` answers it; scoring tools read the prompt token's own rank."""
    return [None if item is None else _ranked(item, top_k) for item in prompt]


def _ranked(item: TokenLogprob, top_k: int) -> dict:
    """The prompt token first, then the alternatives not already there, as vLLM orders them."""
    own = {"logprob": item.logprob, "rank": item.rank, "decoded_token": item.token}
    entries = {str(item.token_id): own}
    for rank, (token_id, text, logprob) in enumerate(item.top[:top_k], start=1):
        entries.setdefault(str(token_id), {"logprob": logprob, "rank": rank, "decoded_token": text})
    return entries


def with_top(tokens: list[TokenLogprob | None], top_k: int) -> list[TokenLogprob | None]:
    """The same tokens with at most ``top_k`` alternatives each: the engine scored the
    prompt once for the largest of the request's two counts (``logprobs``, vLLM's
    ``prompt_logprobs``), and each reply field shows its own."""
    return [None if item is None else replace(item, top=item.top[:top_k]) for item in tokens]


def as_token_ids(tokens: list[TokenLogprob | None]) -> list[TokenLogprob | None]:
    """vLLM's ``return_tokens_as_token_ids``: every token and alternative named
    ``"token_id:N"``, so a client can tell apart ids whose texts are alike."""
    return [None if item is None else _by_id(item) for item in tokens]


def _by_id(item: TokenLogprob) -> TokenLogprob:
    top = tuple((tid, f"token_id:{tid}", logprob) for tid, _, logprob in item.top)
    return replace(item, token=f"token_id:{item.token_id}", top=top)
