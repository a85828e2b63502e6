"""vLLM's offline output for the LoRA tests: the base with LoRA off, or each adapter.

Run as a subprocess (it starts its own engine), once per engine set-up: with no
adapters in the request it runs the base model with LoRA disabled; otherwise each
adapter. Prints one line, MARK then JSON {"base": [...]} or {NAME: [...]} of greedy texts.
"""

from __future__ import annotations

import json
import sys

#: Marks the result line; vLLM prints its own lines to stdout too.
MARK = "LORA-REFERENCE "


def main() -> None:
    request = json.loads(sys.stdin.read())
    from engines.vllm import apply_cpu_defaults, is_cpu_build

    if is_cpu_build():
        apply_cpu_defaults()
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    params = SamplingParams(temperature=0, max_tokens=request["max_tokens"])
    prompts = [{"prompt_token_ids": ids} for ids in request["prompts"]]
    if not request["adapters"]:
        base = LLM(model=request["model"], enforce_eager=True)
        print(
            MARK
            + json.dumps({"base": [o.outputs[0].text for o in base.generate(prompts, params)]}),
            flush=True,
        )
        return
    results = {}
    llm = LLM(
        model=request["model"], enforce_eager=True, enable_lora=True, max_loras=4, max_lora_rank=16
    )
    for int_id, (name, path) in enumerate(sorted(request["adapters"].items()), start=1):
        lora = LoRARequest(name, int_id, path)
        results[name] = [
            o.outputs[0].text for o in llm.generate(prompts, params, lora_request=lora)
        ]
    print(MARK + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
