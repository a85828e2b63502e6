"""``--engine synthetic``: NOT a model. It measures the frontend alone.

Every request gets ``max_tokens`` one-token deltas of fixed text, one per event-loop
turn, as fast as the loop allows. The gateway in front of it does all its real work
(validation, templates, tokenizing with the model's own tokenizer, parsers, metrics,
SSE), so the server's CPU per streamed frame under this engine is the frontend's
ceiling for that configuration; ``openai-frontend bench`` reports it from the server's
``process_cpu_seconds_total``. Nothing it says is a model's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from engines.base import ALL_SAMPLING, Delta, GenerateRequest, ModelInfo
from engines.hf_tokenizer import HFTokenizer

log = logging.getLogger(__name__)

EMBEDDING_SIZE = 384
UNIT_VECTOR = [EMBEDDING_SIZE**-0.5] * EMBEDDING_SIZE
DEFAULT_PIECES = (" tok",)


class SyntheticTokenEngine:
    """NOT a model: emits ``max_tokens`` one-token deltas of ``pieces`` (cycled), instantly.

    It declares every sampling field so that real clients' bodies pass validation; it
    honours none of them but ``max_tokens``, which is the point: only the frontend works.
    """

    supported_sampling = ALL_SAMPLING
    supports_lora = False
    in_process = True
    synthetic = True

    def __init__(
        self,
        model_path: Path | str,
        served_model_name: str | None = None,
        max_model_len: int | None = None,
        pieces: tuple[str, ...] = DEFAULT_PIECES,
    ) -> None:
        self._path = Path(model_path)
        self._name = served_model_name or self._path.name
        self._max_model_len = max_model_len or 8192
        self._tokenizer = HFTokenizer(self._path)
        self._pieces = pieces

    async def start(self) -> None:
        log.warning(
            "engine 'synthetic' is NOT a model: every reply is %r repeated, to measure the "
            "frontend alone",
            "".join(self._pieces),
        )

    def is_ready(self) -> bool:
        return True

    def model(self) -> ModelInfo:
        return ModelInfo(id=self._name, max_model_len=self._max_model_len, path=self._path)

    async def generate(self, request: GenerateRequest) -> AsyncIterator[Delta]:
        total = request.sampling.max_tokens
        pieces = self._pieces
        for i in range(1, total + 1):
            await asyncio.sleep(0)  # one event-loop turn per token, as a real engine's
            yield Delta(pieces[(i - 1) % len(pieces)], [1], i, "length" if i == total else None)

    async def embed(
        self, request_id: str, inputs: list[list[int]], dimensions: int | None
    ) -> list[list[float]]:
        """NOT a model: the same unit-norm vector of EMBEDDING_SIZE floats per input."""
        return [UNIT_VECTOR] * len(inputs)

    async def abort(self, request_id: str) -> None:
        return None

    def num_unfinished_requests(self) -> int:
        return 0

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens)

    def detokenize(self, token_ids: list[int]) -> str:
        return self._tokenizer.decode(token_ids)

    async def add_adapter(self, adapter: object) -> None:
        raise NotImplementedError("the synthetic engine serves no adapters")

    async def remove_adapter(self, adapter: object) -> None:
        raise NotImplementedError("the synthetic engine serves no adapters")

    async def loaded_adapter_ids(self) -> list[int]:
        return []

    async def shutdown(self) -> None:
        return None
