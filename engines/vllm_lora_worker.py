"""Calls into vLLM's workers for the LoRA workaround (vLLM's ``worker_extension_cls``).

vLLM mixes :class:`LoRAWorkerExtension` into its worker class, in the worker's own
process, and ``AsyncLLM.collective_rpc(name)`` runs a method of it on every worker. Two:

- :meth:`~LoRAWorkerExtension.lora_slot_index_of`: the slot an adapter sits in, so the
  engine can check that the pinned zero adapter really is in the last one (the slot a
  base token's -1 reads) instead of trusting the activation order.
- :meth:`~LoRAWorkerExtension.skip_lora_kernels_when_unused`: on the CPU build, a batch
  in which no token has an adapter returns from each LoRA layer's ``add_lora_linear``
  at once. vLLM's CPU wrapper already skips its kernels then (``no_lora``, in every
  ``*_prefill`` op of ``vllm/lora/punica_wrapper/punica_cpu.py``; the model runner
  always sets ``is_prefill`` off CUDA), but only after allocating buffers and walking
  the slices in Python, for every LoRA layer of every step: on a small model that
  costs base-only batches a large share of their time. The output is the same. The
  same for ``add_lora_logits``, which runs its kernels on every step otherwise.
"""

from __future__ import annotations

#: The ``worker_extension_cls`` engine argument naming :class:`LoRAWorkerExtension`.
QUALNAME = f"{__name__}.LoRAWorkerExtension"


class LoRAWorkerExtension:
    """Mixed into vLLM's worker: ``self.model_runner`` is the worker's model runner."""

    def _lora_model_manager(self):
        return self.model_runner.lora_manager._adapter_manager

    def lora_slot_index_of(self, lora_id: int) -> int | None:
        """The slot (index into the stacked LoRA weights) holding ``lora_id``, or None."""
        slots = list(self._lora_model_manager().lora_index_to_id)
        return slots.index(lora_id) if lora_id in slots else None

    def lora_slot_count(self) -> int:
        return len(self._lora_model_manager().lora_index_to_id)

    def skip_lora_kernels_when_unused(self) -> int:
        """Give each CPU punica wrapper the early return; how many wrappers got it."""
        wrappers = self._lora_model_manager().punica_wrapper_mapping.values()
        return sum(skip_when_unused(wrapper) for wrapper in {id(w): w for w in wrappers}.values())


def skip_when_unused(wrapper) -> bool:
    """Make ``wrapper.add_lora_linear`` and ``add_lora_logits`` return at once when no
    token has an adapter.

    Only vLLM's CPU (PyTorch-op) wrapper. Its linear ops return early on ``no_lora`` in
    the prefill path, so there the early return changes nothing but the time. Its
    logits op runs ``bgmv`` on every step whatever the batch, reading slot -1 for base
    tokens: the pinned zero adapter (all zeros) when the workaround is on, so skipping
    it changes nothing either; with the workaround off it is one place base tokens
    would read another adapter's weights. False for any other wrapper, and for one
    already given it.
    """
    from vllm.lora.punica_wrapper.punica_cpu import PunicaWrapperCPU

    if not isinstance(wrapper, PunicaWrapperCPU) or "add_lora_linear" in vars(wrapper):
        return False
    linear, logits = wrapper.add_lora_linear, wrapper.add_lora_logits

    def add_lora_linear(y, x, *args, **kwargs):
        if wrapper.is_prefill and wrapper.no_lora:
            return None
        return linear(y, x, *args, **kwargs)

    def add_lora_logits(y, x, *args, **kwargs):
        if wrapper.no_lora:
            return y  # updated in place, as the op would have left it
        return logits(y, x, *args, **kwargs)

    wrapper.add_lora_linear, wrapper.add_lora_logits = add_lora_linear, add_lora_logits
    return True
