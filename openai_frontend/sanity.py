"""The default model's first answer, checked where users meet it: through the served engine.

A 135M model is numerically fragile. On AMX CPUs in bfloat16 it answered "What is the
capital of France?" with "L'Étoile, la Marseillaise, …", while the same weights passed a
check run through transformers in float32. So the check runs on the real engine, in the
dtype it serves, once it has loaded: a greedy answer without "Paris" is logged loudly,
with the dtype and the remedy. It never stops the server; a poor answer is still served.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import aclosing

from engines.base import Engine, GenerateRequest, SamplingParams
from openai_frontend.chat_prompt import render_chat
from openai_frontend.schemas.chat import ChatCompletionRequest
from templates.sources import TemplateResolver

log = logging.getLogger(__name__)

QUESTION = "What is the capital of France?"
EXPECTED = "Paris"
MAX_TOKENS = 16
TIMEOUT_S = 120.0


async def greedy_answer(engine: Engine, resolver: TemplateResolver, question: str) -> str:
    """The engine's greedy reply to one user message, rendered with the model's template."""
    request = ChatCompletionRequest(
        model=engine.model().id, messages=[{"role": "user", "content": question}]
    )
    prompt = await render_chat(request, resolver)
    prompt_ids = engine.tokenize(prompt, add_special_tokens=False)
    generate = GenerateRequest(
        "startup-sanity-check", prompt_ids, SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0)
    )
    parts = []
    async with aclosing(engine.generate(generate)) as deltas:
        async for delta in deltas:
            parts.append(delta.text)
    return "".join(parts)


async def check_default_model(engine: Engine, resolver: TemplateResolver) -> bool:
    """Ask the France question; log the answer, and a loud warning when it lacks Paris."""
    dtype = engine.model().dtype or "unknown"
    try:
        answer = await asyncio.wait_for(greedy_answer(engine, resolver, QUESTION), TIMEOUT_S)
    except Exception as exc:  # a failed check must not stop a server that loaded
        log.warning("start-up sanity check could not run: %s", exc)
        return False
    if EXPECTED in answer:
        log.info("start-up sanity check passed (dtype %s): %r", dtype, answer)
        return True
    log.warning(
        "\n%s\nSTART-UP SANITY CHECK FAILED: asked %r greedily, the model answered %r "
        "(no %r).\nThe engine computes in dtype %s; this small model is numerically fragile "
        "in reduced precision on some CPUs.\nRemedy: restart with --dtype float32.\n%s",
        "!" * 78,
        QUESTION,
        answer,
        EXPECTED,
        dtype,
        "!" * 78,
    )
    return False
