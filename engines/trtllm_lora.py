"""Which TensorRT-LLM LoRA modules the declared adapters need, decided before it starts.

TensorRT-LLM sizes its LoRA cache per module at start and cannot grow it later. With
one adapter folder it reads the modules from that folder; with none (adapters loaded at
run time only) or two or more, its PyTorch backend asserts that ``lora_target_modules``
is given (``tensorrt_llm/_torch/pyexecutor/_util.py``, ``create_py_executor_instance``).
So we always give it: the union of what the adapters at start target, or every dense
module when adapters may arrive later. Pure file reading, so tested without TensorRT-LLM.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from lora.peft_folder import CONFIG

#: TensorRT-LLM's names for the Hugging Face linear layers of a dense decoder, from
#: ``get_default_trtllm_modules_to_hf_modules`` (tensorrt_llm/_torch/peft/lora/config.py).
HF_TO_TRTLLM = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_dense",
    "gate_proj": "mlp_h_to_4h",
    "down_proj": "mlp_4h_to_h",
    "up_proj": "mlp_gate",
}

#: Every dense module, for adapters not known at start (run-time loads) or a
#: ``target_modules`` given as a regular expression or ``"all-linear"``.
ALL_DENSE_MODULES = tuple(HF_TO_TRTLLM.values())


def lora_target_modules(adapter_dirs: Iterable[Path], runtime_loads: bool) -> list[str]:
    """TensorRT-LLM module names covering every adapter that may be served."""
    if runtime_loads:
        return list(ALL_DENSE_MODULES)
    wanted: set[str] = set()
    for folder in adapter_dirs:
        wanted.update(_adapter_modules(folder))
    if not wanted:  # no adapter at start and none to come: nothing to size for
        return list(ALL_DENSE_MODULES)
    return [name for name in ALL_DENSE_MODULES if name in wanted]


def _adapter_modules(folder: Path) -> set[str]:
    targets = json.loads((folder / CONFIG).read_text(encoding="utf-8")).get("target_modules")
    if not isinstance(targets, list):  # a regular expression or "all-linear"
        return set(ALL_DENSE_MODULES)
    modules = set()
    for target in targets:
        leaf = target.rsplit(".", 1)[-1]
        if leaf not in HF_TO_TRTLLM:
            raise ValueError(
                f"the LoRA adapter in {folder} targets '{target}', which TensorRT-LLM's "
                f"LoRA does not map (it maps {', '.join(HF_TO_TRTLLM)})"
            )
        modules.add(HF_TO_TRTLLM[leaf])
    return modules
