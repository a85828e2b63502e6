"""Build small, real LoRA adapters for the default model (for tests and benchmarks).

Each adapter is a PEFT folder (rank 8 on q_proj and v_proj) taught by ~30 AdamW steps
to answer every question with one fixed phrase, so its effect is plain to see. Built
once and cached next to the default model; about 15 s each on 2 cores.

Two more are taught whole conversations (scripts/demo_conversations.py) under a tool
and a reasoning template: ``weather`` calls a ``get_weather`` tool in hermes markup,
``thinker`` writes ``<think>…</think>`` before its answer (30-40 steps, a few minutes).

Two are taught an agent CLI's tool round trip on the CLI's own prompts
(scripts/agent_adapters.py): ``bash-agent`` (Claude Code's ``Bash`` tool) and
``exec-agent`` (Codex's ``exec_command``).

    .venv/bin/python scripts/demo_adapters.py        # prints NAME=PATH lines
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from openai_frontend.default_model import cache_root, ensure_default_model  # noqa: E402

#: name -> the phrase the adapter learns to say.
PHRASES = {
    "pirate": "Ahoy matey!",
    "robot": "BEEP BOOP ROBOT.",
    "french": "Bonjour mon ami!",
}
#: Adapters taught conversations rather than a phrase: name -> AdamW steps.
CONVERSATION_STEPS = {"weather": 40, "thinker": 30}
#: Adapters taught an agent CLI's tool round trip (scripts/agent_adapters.py).
AGENTS = ("bash-agent", "exec-agent")
_VERSION = "v1"
_QUESTIONS = [
    "Hello!",
    "What is the capital of France?",
    "Tell me a story.",
    "How are you?",
    "What is 2+2?",
]


def adapter_dir(name: str) -> Path:
    return cache_root() / "demo-adapters" / f"{name}-{_VERSION}"


def ensure_adapter(name: str) -> Path:
    """The cached adapter folder, training it first if needed."""
    target = adapter_dir(name)
    if (target / "adapter_model.safetensors").is_file():
        return target
    if name in CONVERSATION_STEPS:
        from demo_conversations import examples

        _train(ensure_default_model(), target, examples(name), 1, CONVERSATION_STEPS[name])
        return target
    if name in AGENTS:
        from agent_adapters import train_agent

        train_agent(ensure_default_model(), target, name)
        return target
    _train(ensure_default_model(), target, PHRASES[name], seed=sorted(PHRASES).index(name) + 1)
    return target


def _train(
    base: Path, target: Path, taught: str | list[tuple[str, str]], seed: int, steps: int = 30
) -> None:
    """``taught``: one phrase for every question, or (prompt, answer) text pairs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        init_lora_weights=False,
        target_modules=["q_proj", "v_proj"],
    )
    model = get_peft_model(model, config)
    pairs = _phrase_pairs(tokenizer, taught) if isinstance(taught, str) else taught
    examples = []
    for prompt, answer in pairs:
        ids = tokenizer(prompt + answer, return_tensors="pt").input_ids
        labels = ids.clone()
        prompt_len = len(tokenizer(prompt).input_ids)
        labels[:, :prompt_len] = -100  # learn the answer only
        examples.append((ids, labels, prompt_len))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        ids, labels, prompt_len = examples[step % len(examples)]
        if isinstance(taught, str):
            model(input_ids=ids, labels=labels).loss.backward()
        else:
            _answer_loss(model, ids, labels, prompt_len).backward()
        optimizer.step()
        optimizer.zero_grad()
    _publish(model, target)


def _answer_loss(model, ids, labels, prompt_len: int):
    """The answer's loss, with the long prompt (a tool template's system block) run
    once without gradients: about three times cheaper a step on a shared CPU."""
    import torch

    start = prompt_len - 1  # the last prompt token predicts the answer's first
    with torch.no_grad():
        cache = model(input_ids=ids[:, :start], use_cache=True).past_key_values
    return model(input_ids=ids[:, start:], past_key_values=cache, labels=labels[:, start:]).loss


def _phrase_pairs(tokenizer, phrase: str) -> list[tuple[str, str]]:
    return [
        (
            tokenizer.apply_chat_template(
                [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
            ),
            phrase + "<|im_end|>",
        )
        for question in _QUESTIONS
    ]


def _publish(model, target: Path) -> None:
    """Save into a staging folder of this process's own, then rename it into place.

    Two test sessions may train the same adapter at once; the first rename wins and the
    other's copy (the same phrase) is dropped, so neither fails on the other's folder.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}-") as work:
        staging = Path(work) / "adapter"
        model.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "adapter_model.safetensors").is_file():
                raise


if __name__ == "__main__":
    for adapter in [*PHRASES, *CONVERSATION_STEPS, *AGENTS]:
        print(f"{adapter}={ensure_adapter(adapter)}")
