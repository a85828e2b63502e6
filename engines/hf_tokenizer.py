"""The model's own Hugging Face tokenizer, for engines that take token ids.

Shared by the in-process backends so that the frontend tokenizes a prompt exactly once
and every backend counts tokens the same way.
"""

from __future__ import annotations

import threading
from pathlib import Path

#: Held while anything imports or loads from transformers (directly or through vLLM):
#: its lazy module imports are not thread-safe, and several models load in worker threads
#: at once under --config (seen: "partially initialized module 'accelerate.big_modeling'").
#: Reentrant, because a vLLM engine loads its tokenizer while holding it.
MODEL_LOADING = threading.RLock()


class HFTokenizer:
    """A thin wrapper over ``transformers.AutoTokenizer`` with the calls engines need."""

    def __init__(self, model_path: Path | str) -> None:
        with MODEL_LOADING:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(model_path))

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens)

    @property
    def model_max_length(self) -> int:
        """The context length the tokenizer was saved with."""
        return int(self._tokenizer.model_max_length)

    def decode(self, token_ids: list[int]) -> str:
        return self._tokenizer.decode(token_ids)

    def token_text(self, token_id: int) -> str:
        """The text of one token as logprobs show it (decoded, not the raw piece)."""
        return self._tokenizer.decode([token_id])
