"""Train the agent-CLI demo adapters (``bash-agent``, ``exec-agent``) on the CLIs' own
prompts (scripts/agent_conversations.py).

Their prompts are 1.6k-2.3k tokens, nearly all of it the same tool block, and a 2-core
CPU has to learn them in a minute or two. Two things make that cheap:

- Only the last ``LAYERS`` decoder layers get LoRA weights (PEFT's
  ``layers_to_transform``; vLLM loads such an adapter, the other layers have none). The
  layers below never change, so each conversation's hidden state where the trained
  layers start is computed once, and every step runs only the top of the model.
- A step runs the prefix every variant shares once (without gradients) through the
  trained layers, and each variant's remainder on a copy of its cache.

Each variant is its whole round trip, the second prompt tokenized at once as the
gateway tokenizes it, learnt on the answers' tokens only (the call, and the reply after
the tool's result). Training stops once every answer token is the greedy choice by
``MARGIN`` logits over the runner-up, so small floating-point differences (vLLM's
kernels, another CPU's vector unit) cannot flip a token.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

#: Decoder layers with LoRA weights: the top ones.
LAYERS = 8
#: At most this many AdamW steps, each over every variant.
MAX_STEPS = 60
LEARNING_RATE = 2e-3
#: Logits by which each answer token must beat the runner-up before training stops.
MARGIN = 4.0


def train_agent(base: Path, target: Path, adapter: str, max_steps: int = MAX_STEPS) -> None:
    """Train ``adapter`` on the default model at ``base``; published at ``target``."""
    import torch
    from agent_conversations import conversations
    from demo_adapters import _publish
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(1)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    examples = [labelled(tokenizer, parts) for parts in conversations(adapter)]
    first = model.config.num_hidden_layers - LAYERS
    with torch.no_grad():
        inputs = [_hidden_before(model, ids, first) for ids, _, _ in examples]
    config = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        layers_to_transform=list(range(first, model.config.num_hidden_layers)),
    )
    model = get_peft_model(model, config)
    top = _top_of(model, first)
    shared = _shared_prefix([ids for ids, _, _ in examples])
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    started = time.monotonic()
    for step in range(max_steps):
        with torch.no_grad():
            prefix = top.model(inputs_embeds=inputs[0][:, :shared], use_cache=True).past_key_values
        worst = float("inf")
        for hidden, (_, labels, start) in zip(inputs, examples, strict=True):
            loss, margin = _remainder_loss(
                top, copy.deepcopy(prefix), hidden, labels, shared, start
            )
            loss.div(len(examples)).backward()
            worst = min(worst, margin)
        print(
            f"{adapter}: step {step} worst margin {worst:.2f} ({time.monotonic() - started:.0f} s)",
            file=sys.stderr,
        )
        if worst >= MARGIN:
            break
        optimizer.step()
        optimizer.zero_grad()
    else:
        raise RuntimeError(f"{adapter}: answers not learnt by {MARGIN} in {max_steps} steps")
    _restore_layer_indexes(model)
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


def _hidden_before(model, ids, layer: int):
    """The residual stream entering decoder layer ``layer`` (the untrained layers' output)."""
    return model.model(input_ids=ids, output_hidden_states=True).hidden_states[layer]


def _top_of(model, first: int):
    """A causal LM made of the (LoRA-wrapped) layers from ``first`` up, the final norm
    and the head, sharing their modules with ``model``: it takes the residual stream as
    ``inputs_embeds``. Its layers count their KV-cache slots from 0."""
    import torch
    from transformers import AutoModelForCausalLM

    causal_lm = model.get_base_model()
    config = copy.deepcopy(causal_lm.config)
    config.num_hidden_layers -= first
    with torch.device("meta"):
        top = AutoModelForCausalLM.from_config(config)
    top.model.layers = torch.nn.ModuleList(causal_lm.model.layers[first:])
    top.model.norm = causal_lm.model.norm
    top.model.rotary_emb = causal_lm.model.rotary_emb
    top.lm_head = causal_lm.lm_head
    for index, layer in enumerate(top.model.layers):
        layer.self_attn.layer_idx = index
    return top


def _restore_layer_indexes(model) -> None:
    for index, layer in enumerate(model.get_base_model().model.layers):
        layer.self_attn.layer_idx = index


def _shared_prefix(sequences: list) -> int:
    """How many leading tokens every sequence shares (one less than all, to leave each a
    token to run after the cached prefix)."""
    shortest = min(ids.shape[1] for ids in sequences)
    first = sequences[0][0]
    for index in range(shortest):
        if any(ids[0, index] != first[index] for ids in sequences[1:]):
            return index
    return shortest - 1


def _remainder_loss(top, cache, hidden, labels, shared: int, start: int):
    """The answers' loss of one conversation, its prefix in ``cache``, and the smallest
    lead of an answer token over the runner-up: the prompt up to its first answer runs
    without gradients, the rest (answers and what is between them) with."""
    import torch

    split = start - 1  # the last prompt token predicts the first answer token
    # The passes without gradients skip the head: its logits would go unread.
    with torch.no_grad():
        cache = top.model(
            inputs_embeds=hidden[:, shared:split], past_key_values=cache
        ).past_key_values
    out = top(inputs_embeds=hidden[:, split:], past_key_values=cache, labels=labels[:, split:])
    return out.loss, _worst_margin(out.logits.detach(), labels[:, split:])


def _worst_margin(logits, labels) -> float:
    """Over the answer tokens: the label's logit minus the best other (logits[i]
    predicts labels[i + 1])."""
    import torch

    targets = labels[0, 1:]
    scores = logits[0, :-1][targets != -100]
    wanted = targets[targets != -100]
    chosen = scores.gather(1, wanted[:, None])[:, 0]
    others = scores.scatter(1, wanted[:, None], float("-inf")).max(1).values
    return float(torch.min(chosen - others))
