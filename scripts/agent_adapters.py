"""Train the agent-CLI demo adapters (``bash-agent``, ``exec-agent``) on the CLIs' own
prompts (scripts/agent_conversations.py).

Their prompts are 1.6k-2.2k tokens, nearly all of it the same tool block, so a step runs
that shared prefix once (without gradients) and every variant's remainder on a copy of
its cache: one step sees every variant for about three variants' cost. Each variant is
its whole round trip, the second prompt tokenized at once as the gateway tokenizes it,
learnt on the answers' tokens only (the call, and the reply after the tool's result).
"""

from __future__ import annotations

import copy
from pathlib import Path

#: AdamW steps, each over every variant.
STEPS = 12
LEARNING_RATE = 2e-3


def train_agent(base: Path, target: Path, adapter: str, steps: int = STEPS) -> None:
    """Train ``adapter`` on the default model at ``base``; published at ``target``."""
    import torch
    from agent_conversations import conversations
    from demo_adapters import _publish
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    model = get_peft_model(model, config)
    examples = [labelled(tokenizer, parts) for parts in conversations(adapter)]
    shared = _shared_prefix([ids for ids, _, _ in examples])
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    for _ in range(steps):
        with torch.no_grad():
            prefix = model(input_ids=examples[0][0][:, :shared], use_cache=True).past_key_values
        for ids, labels, start in examples:
            _remainder_loss(model, copy.deepcopy(prefix), ids, labels, shared, start).div(
                len(examples)
            ).backward()
        optimizer.step()
        optimizer.zero_grad()
    _publish(model, target)


def labelled(tokenizer, parts: tuple[str, ...]):
    """The conversation's ids (its text tokenized at once), labels on the answers (the
    odd parts) only, and the index of the first answer token."""
    import torch

    encoded = tokenizer("".join(parts), return_offsets_mapping=True, return_tensors="pt")
    spans, start = [], 0
    for index, part in enumerate(parts):
        if index % 2:
            spans.append((start, start + len(part)))
        start += len(part)
    offsets = encoded.offset_mapping[0].tolist()
    learnt = torch.tensor([any(b <= first < e for b, e in spans) for first, _ in offsets])
    labels = encoded.input_ids.clone()
    labels[0, ~learnt] = -100
    return encoded.input_ids, labels, int(learnt.nonzero()[0])


def _shared_prefix(sequences: list) -> int:
    """How many leading tokens every sequence shares (one less than all, to leave each a
    token to run after the cached prefix)."""
    shortest = min(ids.shape[1] for ids in sequences)
    first = sequences[0][0]
    for index in range(shortest):
        if any(ids[0, index] != first[index] for ids in sequences[1:]):
            return index
    return shortest - 1


def _remainder_loss(model, cache, ids, labels, shared: int, start: int):
    """The answers' loss of one conversation, its prefix in ``cache``: the prompt up to
    its first answer runs without gradients, the rest (answers and what is between
    them) with."""
    import torch

    split = start - 1  # the last prompt token predicts the first answer token
    with torch.no_grad():
        cache = model(input_ids=ids[:, shared:split], past_key_values=cache).past_key_values
    return model(input_ids=ids[:, split:], past_key_values=cache, labels=labels[:, split:]).loss
