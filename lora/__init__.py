"""LoRA adapters over one base model: declared, validated, leased; engine-agnostic.

Engines map an :class:`lora.registry.Adapter` to their own request type (vLLM's and
TensorRT-LLM's ``LoRARequest(name, int_id, path)``); nothing here imports an engine.
"""
