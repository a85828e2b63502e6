"""An upstream's logprobs as neutral ``TokenLogprob``s, by token id.

An OpenAI-compatible upstream names logprob tokens by text, which cannot be mapped back
to ids (several ids decode alike). The remote engine therefore asks a vLLM-compatible
upstream for vLLM's ``return_tokens_as_token_ids`` (tokens come as ``"token_id:N"``) and
for ``prompt_logprobs`` (keyed by id, with ranks), and takes each token's text from the
model's own tokenizer, as the in-process engine does. Pure functions, unit-tested.
"""

from __future__ import annotations

from collections.abc import Callable

from engines.base import TokenLogprob

TextOf = Callable[[int], str]

_PREFIX = "token_id:"


class UnreadableLogprobs(ValueError):
    """The upstream's logprobs are not in the shape asked for (an upstream without
    vLLM's ``return_tokens_as_token_ids`` sends token texts)."""


def token_id(name: str) -> int:
    """``"token_id:42"`` → 42."""
    if not name.startswith(_PREFIX):
        raise UnreadableLogprobs(f"a logprob token {name!r} is not named by its id")
    return int(name[len(_PREFIX) :])


def generated_logprobs(legacy: dict | None, top_k: int, text_of: TextOf) -> list[TokenLogprob]:
    """A completion chunk's legacy ``logprobs`` (``tokens``, ``token_logprobs``,
    ``top_logprobs``) as TokenLogprobs. The alternatives are the ``top_k`` most likely:
    vLLM's dict may also hold the sampled token beyond them."""
    if not legacy:
        return []
    tops = legacy.get("top_logprobs") or [None] * len(legacy["tokens"])
    items = []
    for name, logprob, top in zip(legacy["tokens"], legacy["token_logprobs"], tops, strict=True):
        chosen = token_id(name)
        ranked = sorted(((token_id(k), v) for k, v in (top or {}).items()), key=lambda e: -e[1])
        alternatives = tuple((tid, text_of(tid), lp) for tid, lp in ranked[:top_k])
        items.append(TokenLogprob(chosen, text_of(chosen), logprob, alternatives))
    return items


def prompt_logprobs(
    entries: list[dict | None], prompt_ids: list[int], top_k: int, text_of: TextOf
) -> list[TokenLogprob | None]:
    """vLLM's ``prompt_logprobs`` reply field (None for the first token, then
    ``{id: {logprob, rank, decoded_token}}``) as TokenLogprobs for ``prompt_ids``."""
    if len(entries) != len(prompt_ids):
        raise UnreadableLogprobs(
            f"{len(entries)} prompt logprobs for a prompt of {len(prompt_ids)} tokens"
        )
    return [
        None if entry is None else _prompt_token(entry, chosen, top_k, text_of)
        for entry, chosen in zip(entries, prompt_ids, strict=True)
    ]


def _prompt_token(entry: dict, chosen: int, top_k: int, text_of: TextOf) -> TokenLogprob:
    options = {int(key): value for key, value in entry.items()}
    if chosen not in options:
        raise UnreadableLogprobs(f"no logprob for prompt token {chosen}")
    ranked = sorted(
        (item for item in options.items() if item[1].get("rank") and item[1]["rank"] <= top_k),
        key=lambda item: item[1]["rank"],
    )
    top = tuple((tid, text_of(tid), value["logprob"]) for tid, value in ranked)
    own = options[chosen]
    return TokenLogprob(chosen, text_of(chosen), own["logprob"], top, own.get("rank"))
