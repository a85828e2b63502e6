"""Scores of text pairs on an embedding model: the cosine of the two texts' embeddings.

As vLLM scores with an embedding model: each distinct text is embedded once (a rerank's
query once, however many documents), all of them in one engine batch through
:func:`run_embedding` (so admission, the request timeout and the metrics are the
embeddings' own), and each pair's score is the cosine of its two vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from openai_frontend.embedding_run import run_embedding
from openai_frontend.pooling_inputs import kept_tokens, token_ids
from openai_frontend.schemas.scoring import ScoringFields
from openai_frontend.state import ServerState, Target


@dataclass(frozen=True, slots=True)
class Side:
    """One side of the pairs: its texts and the request field that holds them (named
    in a 400 for a text over the context)."""

    texts: list[str]
    param: str


@dataclass(frozen=True, slots=True)
class Scores:
    scores: list[float]
    prompt_tokens: int


async def score_pairs(
    state: ServerState,
    target: Target,
    body: ScoringFields,
    first: Side,
    second: Side,
    log_fields: dict,
) -> Scores:
    """One score per text of ``second``: against ``first``'s only text, or its own (N:N)."""
    context = target.info.max_model_len
    keep = kept_tokens(body.truncate_prompt_tokens, context, "truncate_prompt_tokens")
    per_query = kept_tokens(body.max_tokens_per_query, context, "max_tokens_per_query")
    per_doc = kept_tokens(body.max_tokens_per_doc, context, "max_tokens_per_doc")
    engine = target.engine
    first_ids = await token_ids(engine, first.texts, _least(keep, per_query), context, first.param)
    spent = sum(map(len, first_ids))
    second_ids = await token_ids(
        engine, second.texts, _least(keep, per_doc), context, second.param, spent
    )
    vectors = await run_embedding(state, target, first_ids + second_ids, None, log_fields)
    firsts, seconds = vectors[: len(first_ids)], vectors[len(first_ids) :]
    if len(firsts) == 1:
        firsts = firsts * len(seconds)
    scores = [cosine(a, b) for a, b in zip(firsts, seconds, strict=True)]
    return Scores(scores, spent + sum(map(len, second_ids)))


def cosine(a: list[float], b: list[float]) -> float:
    """vLLM's score for an embedding model (0 for a zero vector, as torch gives)."""
    norms = math.hypot(*a) * math.hypot(*b)
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


def _least(*limits: int | None) -> int | None:
    given = [limit for limit in limits if limit is not None]
    return min(given) if given else None
