"""vLLM's scheduler, told about one LoRA slot fewer than the workers have.

With ``--base-via-zero-lora pinned`` the zero adapter sits pinned in one of the engine's
``max_loras`` slots (engines.vllm_zero_lora.pin_in_last_slot), and base requests carry no
adapter, so the scheduler does not count it: left alone, it would put ``max_loras``
distinct adapters in one batch while only ``max_loras - 1`` slots are free, and the
worker's LRU would evict an adapter that batch is using (vLLM 0.32:
``v1/core/sched/scheduler.py``, the ``max_loras`` check; ``lora/model_manager.py``,
``LRUCacheLoRAModelManager.activate_adapter``).

vLLM builds its scheduler in the engine core process from ``scheduler_cls``, a dotted
name; this module's :func:`reserving_one_lora_slot` is that name. It builds the
scheduler vLLM would have picked (async or not) and lowers that scheduler's own
``max_loras`` by one; the workers keep theirs.
"""

from __future__ import annotations

import copy

#: The ``scheduler_cls`` engine argument that selects :func:`reserving_one_lora_slot`.
QUALNAME = f"{__name__}.reserving_one_lora_slot"


def reserving_one_lora_slot(*, vllm_config, **kwargs):
    """A vLLM scheduler (the one its config picks) that leaves one LoRA slot unused."""
    if vllm_config.scheduler_config.async_scheduling:
        from vllm.v1.core.sched.async_scheduler import AsyncScheduler as Scheduler
    else:
        from vllm.v1.core.sched.scheduler import Scheduler
    scheduler = Scheduler(vllm_config=vllm_config, **kwargs)
    scheduler.lora_config = one_slot_fewer(scheduler.lora_config)
    return scheduler


def one_slot_fewer(lora_config):
    """A copy of vLLM's ``LoRAConfig`` with ``max_loras`` one lower (None stays None)."""
    if lora_config is None:
        return None
    if lora_config.max_loras < 2:
        raise ValueError("reserving a LoRA slot needs max_loras >= 2")
    fewer = copy.copy(lora_config)
    fewer.max_loras = lora_config.max_loras - 1
    return fewer
