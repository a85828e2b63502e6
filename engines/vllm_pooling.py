"""Embeddings from vLLM's pooling runner (``runner="pooling"``): ``AsyncLLM.encode``.

A decoder-only checkpoint (SmolLM2) is converted by vLLM itself (``convert`` resolves to
"embed": last-token pooling, normalized); a sentence-transformers folder (all-MiniLM-L6-v2)
brings its own pooling and normalization. Every input of a request is submitted at once,
so the engine schedules them as one batch, exactly as vLLM's own server does.
"""

from __future__ import annotations

import asyncio

from engines.base import InvalidRequest
from engines.vllm_inputs import engine_input


def check_dimensions(model_config, dimensions: int | None) -> None:
    """A 400 naming ``dimensions`` before anything runs, with vLLM's own verdict (a
    model that is not Matryoshka, or a size it does not offer)."""
    if dimensions is None:
        return
    from vllm.exceptions import VLLMClientError
    from vllm.pooling_params import PoolingParams

    try:
        PoolingParams(task="embed", dimensions=dimensions).verify(model_config)
    except (VLLMClientError, ValueError) as exc:
        raise InvalidRequest(str(exc), "dimensions") from None


async def encode_all(
    llm, request_id: str, inputs: list[list[int]], dimensions: int | None
) -> list[list[float]]:
    """One normalized vector per input, in input order.

    If one input fails, the others are cancelled (``encode`` aborts a cancelled request
    in the engine), so a refused request leaves no work behind.
    """
    tasks = [
        asyncio.ensure_future(_encode_one(llm, f"{request_id}-{index}", ids, _params(dimensions)))
        for index, ids in enumerate(inputs)
    ]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _params(dimensions: int | None):
    from vllm.pooling_params import PoolingParams

    return PoolingParams(task="embed", dimensions=dimensions)


async def _encode_one(llm, request_id: str, token_ids: list[int], params) -> list[float]:
    """The final (and only) output of one pooling request, as plain floats."""
    final = None
    async for output in llm.encode(engine_input(token_ids), params, request_id):
        final = output
    return final.outputs.data.tolist()
