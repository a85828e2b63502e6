"""vLLM's offline output for the LoRA tests: the base with LoRA off, or each adapter.

Run as a subprocess (it starts its own engine, in the server's dtype), once per engine
set-up: with no adapters in the request it runs the base model with LoRA disabled;
otherwise each adapter. Each prompt runs alone, as the server tests send them: greedy text
may change with the batch. Prints one line, MARK then JSON {"base": [...]} or
{NAME: [...]} of greedy texts.
"""

from __future__ import annotations

import json
import sys

#: Marks the result line; vLLM prints its own lines to stdout too.
MARK = "LORA-REFERENCE "


def main() -> None:
    request = json.loads(sys.stdin.read())
    from engines.builds import apply_cpu_defaults, is_cpu_build

    if is_cpu_build():
        apply_cpu_defaults()
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    params = SamplingParams(temperature=0, max_tokens=request["max_tokens"])
    prompts = [{"prompt_token_ids": ids} for ids in request["prompts"]]
    if not request["adapters"]:
        base = LLM(model=request["model"], enforce_eager=True, dtype=request["dtype"])
        print(MARK + json.dumps({"base": _one_by_one(base, prompts, params)}), flush=True)
        return
    results = {}
    llm = LLM(
        model=request["model"],
        enforce_eager=True,
        dtype=request["dtype"],
        enable_lora=True,
        max_loras=4,
        max_lora_rank=16,
    )
    for int_id, (name, path) in enumerate(sorted(request["adapters"].items()), start=1):
        lora = LoRARequest(name, int_id, path)
        results[name] = _one_by_one(llm, prompts, params, lora_request=lora)
    print(MARK + json.dumps(results), flush=True)


def _one_by_one(llm, prompts: list, params, **kwargs) -> list[str]:
    return [llm.generate([prompt], params, **kwargs)[0].outputs[0].text for prompt in prompts]


if __name__ == "__main__":
    main()
