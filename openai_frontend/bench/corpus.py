"""Prompts for a run: synthetic text cut to a token length, or a JSONL file.

Synthetic prompts are seeded random sentences, tokenized with the model's tokenizer and
cut to exactly the length asked, each opened by its own number, so no two prompts of a
run repeat and no server gets prefix-cache hits across requests.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_WORD_SOURCE = (
    "the quiet river carries old light through a valley of stone and pine where travellers "
    "rest beside fires telling stories about distant cities markets bridges ships winter "
    "harvest music lanterns engineers built towers measured stars wrote letters planted "
    "orchards studied maps weather tides machines libraries gardens mountains deserts "
    "forests islands children learned numbers colours languages history songs poems why "
    "because although every morning evening season changes slowly quickly bright dark warm "
    "cold new ancient careful curious patient brave small large green blue golden silver"
)
WORDS = _WORD_SOURCE.split()


class Tokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool) -> list[int]: ...

    def decode(self, token_ids: list[int]) -> str: ...


@dataclass(frozen=True)
class Prompt:
    text: str
    input_tokens: int | None
    output_tokens: int


class LengthSampler:
    """Lengths fixed (std 0) or drawn from a normal distribution, at least 1."""

    def __init__(self, mean: int, std: float, rng: random.Random) -> None:
        self.mean, self.std, self.rng = mean, std, rng

    def __call__(self) -> int:
        if self.std <= 0:
            return self.mean
        return max(1, round(self.rng.gauss(self.mean, self.std)))


def synthetic_prompts(
    tokenizer: Tokenizer,
    input_len: LengthSampler,
    output_len: LengthSampler,
    seed: int,
) -> Iterator[Prompt]:
    """An endless stream of distinct prompts of the sampled token lengths."""
    rng = random.Random(seed)
    number = 0
    while True:
        number += 1
        want = input_len()
        words = [f"Request {number}:"]
        ids: list[int] = []
        while len(ids) < want:
            words.extend(rng.choice(WORDS) for _ in range(max(8, want)))
            ids = tokenizer.encode(" ".join(words), add_special_tokens=False)
        yield Prompt(tokenizer.decode(ids[:want]), want, output_len())


def jsonl_prompts(path: Path, output_len: LengthSampler) -> Iterator[Prompt]:
    """Prompts from a JSONL file: one object per line with "prompt" (or "text"), and
    optionally "output_tokens" to override the sampled output length."""
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row.get("prompt", row.get("text"))
            except (json.JSONDecodeError, AttributeError):
                raise ValueError(f"{path}:{number}: not a JSON object") from None
            if not isinstance(text, str):
                raise ValueError(f'{path}:{number}: needs a string "prompt"')
            yield Prompt(text, None, int(row.get("output_tokens") or output_len()))
