"""Chat template render time: ours against transformers' apply_chat_template.

"repeat" renders a conversation seen before (served from the render memo; the common
case for retries, parallel samples and agents resending the same context); "fresh"
clears the memo before each render (compiled template and tojson memo still warm).

A 10-message conversation with tools, rendered with the real Llama 3.1 and Qwen2.5
templates from ../shared/chat_templates, both sides given the same template text and
special tokens. Prints microseconds per render and the speed-up.

    .venv/bin/python scripts/bench_templates.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokenizers import Tokenizer, models  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from templates.renderer import _RENDERS, render  # noqa: E402

TEMPLATES = ROOT.parent / "shared" / "chat_templates"
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def conversation() -> list[dict]:
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(4):
        messages.append({"role": "user", "content": f"Question {i}: what is the weather like?"})
        messages.append({"role": "assistant", "content": f"Answer {i}: sunny and warm, mostly."})
    messages.append({"role": "user", "content": "And in Paris?"})
    return messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    messages, tools = conversation(), [TOOL]
    print(
        "| template | ours, repeat µs | ours, fresh µs | transformers µs "
        "| speed-up repeat | fresh |"
    )
    print("|---|---|---|---|---|---|")
    for family in ("llama-3.1-instruct", "qwen2.5-instruct"):
        data = json.loads((TEMPLATES / f"{family}.json").read_text())
        tokens = {k: data[k] for k in ("bos_token", "eos_token") if data.get(k)}
        backend = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **tokens)
        template = data["chat_template"]

        def ours(template=template, tokens=tokens) -> str:
            return render(
                template, messages, tools=tools, add_generation_prompt=True, special_tokens=tokens
            )

        def theirs(template=template, tokenizer=tokenizer) -> str:
            return tokenizer.apply_chat_template(
                messages,
                tools=tools,
                chat_template=template,
                tokenize=False,
                add_generation_prompt=True,
            )

        def ours_fresh(ours=ours) -> str:
            _RENDERS.clear()
            return ours()

        assert ours() == theirs() == ours_fresh(), family
        repeat_us, fresh_us, theirs_us = (
            min(timeit.repeat(fn, number=args.repeat, repeat=3)) / args.repeat * 1e6
            for fn in (ours, ours_fresh, theirs)
        )
        print(
            f"| {family} | {repeat_us:.1f} | {fresh_us:.1f} | {theirs_us:.1f} "
            f"| {theirs_us / repeat_us:.1f}x | {theirs_us / fresh_us:.1f}x |"
        )


if __name__ == "__main__":
    main()
