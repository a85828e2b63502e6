"""The worker-side LoRA calls (engines/vllm_lora_worker.py), on vLLM's real CPU punica
wrapper and a stand-in for its LoRA model manager; no engine."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from engines.vllm_lora_worker import LoRAWorkerExtension, skip_when_unused

WIDTH, RANK, SLOTS = 8, 2, 3


def _wrapper(token_adapters: tuple[int, ...]):
    """vLLM's CPU wrapper, mapped as the CPU model runner maps a batch (is_prefill)."""
    from vllm.lora.layers.utils import LoRAMapping
    from vllm.lora.punica_wrapper.punica_selector import get_punica_wrapper

    wrapper = get_punica_wrapper(64, 8, device="cpu")
    mapping = LoRAMapping(token_adapters, token_adapters, is_prefill=True)
    wrapper.update_metadata(mapping, [1, 2, 7], SLOTS + 1, 32)
    return wrapper


def _linear(wrapper) -> torch.Tensor:
    """One LoRA layer's output for three tokens, all-ones weights in every slot."""
    torch.manual_seed(0)
    out = torch.zeros(3, WIDTH)
    lora_a = (torch.ones(SLOTS, 1, RANK, WIDTH),)
    lora_b = (torch.ones(SLOTS, 1, WIDTH, RANK),)
    wrapper.add_lora_linear(out, torch.randn(3, WIDTH), lora_a, lora_b, 1.0, (WIDTH,))
    return out


def _logits(wrapper) -> torch.Tensor:
    """The logits LoRA op on three tokens, all-ones weights in every slot."""
    torch.manual_seed(0)
    logits = torch.zeros(3, WIDTH)
    lora_a = torch.ones(SLOTS, 1, RANK, WIDTH)
    lora_b = torch.ones(SLOTS, 1, WIDTH, RANK)
    wrapper.add_lora_logits(logits, torch.randn(3, WIDTH), lora_a, lora_b, 1.0)
    return logits


@pytest.mark.parametrize("tokens", [(0, 0, 0), (1, 1, 0), (0, 2, 1)])
def test_the_early_return_changes_no_output(tokens):
    plain, skipping = _wrapper(tokens), _wrapper(tokens)
    assert skip_when_unused(skipping)
    assert torch.equal(_linear(skipping), _linear(plain))


def test_a_batch_without_adapters_never_reaches_the_kernels():
    wrapper = _wrapper((0, 0, 0))
    assert wrapper.no_lora
    skip_when_unused(wrapper)
    # the ops it would run: none may be called
    wrapper.add_shrink = wrapper.add_expand = None
    assert not _linear(wrapper).any()
    assert not _logits(wrapper).any()


@pytest.mark.parametrize("tokens", [(1, 1, 0), (0, 2, 1)])
def test_the_logits_op_is_unchanged_when_any_token_has_an_adapter(tokens):
    plain, skipping = _wrapper(tokens), _wrapper(tokens)
    skip_when_unused(skipping)
    assert torch.equal(_logits(skipping), _logits(plain))
    assert _logits(plain).any()


def test_base_only_logits_read_no_slot():
    """vLLM's op reads slot -1 for base tokens (here all ones: it adds to them); the
    early return leaves the logits as the base model made them."""
    plain, skipping = _wrapper((0, 0, 0)), _wrapper((0, 0, 0))
    assert _logits(plain).any()
    skip_when_unused(skipping)
    assert not _logits(skipping).any()


def test_only_once_and_only_the_cpu_wrapper():
    wrapper = _wrapper((1, 0, 0))
    assert skip_when_unused(wrapper) and not skip_when_unused(wrapper)
    assert not skip_when_unused(SimpleNamespace(add_lora_linear=None))


def _worker(lora_index_to_id: list[int | None], wrappers: dict) -> LoRAWorkerExtension:
    worker = LoRAWorkerExtension()
    manager = SimpleNamespace(lora_index_to_id=lora_index_to_id, punica_wrapper_mapping=wrappers)
    worker.model_runner = SimpleNamespace(lora_manager=SimpleNamespace(_adapter_manager=manager))
    return worker


def test_the_slot_an_adapter_sits_in():
    worker = _worker([None, 5, 9], {})
    assert worker.lora_slot_index_of(9) == 2 and worker.lora_slot_count() == 3
    assert worker.lora_slot_index_of(4) is None


def test_a_wrapper_shared_by_two_prefixes_counts_once():
    shared = _wrapper((0, 0, 0))
    assert _worker([], {"a": shared, "b": shared}).skip_lora_kernels_when_unused() == 1
