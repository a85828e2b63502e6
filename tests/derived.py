"""Expectations derived from the server's own answers, so tests hold on any CPU.

A 135M model's greedy text changes with dtype, CPU and batch; tests take a text from the
same server first and derive what they expect from it, instead of asserting what the
model knows.
"""

from __future__ import annotations

import json
from pathlib import Path

_PUNCTUATION = ".,!?;:\"'()"


def inner_word(text: str) -> str:
    """A word of ``text`` (3+ characters) whose first occurrence is past the start.

    Stopping on it leaves a non-empty prefix, which is what stop-string tests compare.
    """
    for word in text.split()[1:]:
        word = word.strip(_PUNCTUATION)
        if len(word) >= 3 and text.index(word) > 0:
            return word
    raise AssertionError(f"no word to stop on in {text!r}; ask for a longer answer")


def eos_token_id(model_path: Path) -> int:
    """The model's end-of-sequence token, from its generation_config.json."""
    config = json.loads((model_path / "generation_config.json").read_text())
    eos = config["eos_token_id"]
    return eos[0] if isinstance(eos, list) else eos


def forcing_eos(model_path: Path) -> dict[str, dict[str, int]]:
    """Request fields that make EOS the most likely token at every step."""
    return {"logit_bias": {str(eos_token_id(model_path)): 100}}
