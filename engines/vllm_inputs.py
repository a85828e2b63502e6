"""Prompts as vLLM's engine takes them: already rendered, since we tokenize ourselves."""

from __future__ import annotations


def engine_input(token_ids: list[int]):
    """Token ids as vLLM's rendered input (``TokensInput``).

    vLLM 0.32 deprecates raw prompts such as ``{"prompt_token_ids": ...}`` ("will be
    removed") and sends them through its renderer on a thread pool, one hop per request.
    A rendered input skips that hop and gets the same checks (length, vocabulary) in
    vLLM's input processor. (An old-vs-new A/B showed no speed difference on embeddings:
    this is for the deprecation.) The ids are copied: the input belongs to vLLM from here
    on, and with ``n > 1`` several requests share one prompt list.
    """
    from vllm.inputs import tokens_input

    return tokens_input(list(token_ids))
