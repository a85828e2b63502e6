"""The zero adapter fits the checkpoint and the rank limit; when it is applied (no engine).

Synthetic base folders: a plain GQA checkpoint, a fused-QKV one, GPTQ- and
bitsandbytes-looking quantized ones, and one with no attention projection to attach to.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engines.vllm_lora_probe import DIRECT, PINNED, ZERO, base_request_route
from engines.vllm_zero_lora import NoZeroAdapterTarget, write_zero_adapter
from lora.peft_folder import BaseModel, inspect_adapter

HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 64, 4, 2, 16
CONFIG = {
    "hidden_size": HIDDEN,
    "num_attention_heads": HEADS,
    "num_key_value_heads": KV_HEADS,
}
Q_OUT, KV_OUT = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
LAYERS = 2


def _base(folder: Path, tensors: dict[str, torch.Tensor], config: dict = CONFIG) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


def _per_layer(**modules: torch.Tensor) -> dict[str, torch.Tensor]:
    return {
        f"model.layers.{i}.self_attn.{name}": tensor.clone()
        for i in range(LAYERS)
        for name, tensor in modules.items()
    }


def _written(base: Path, tmp_path: Path) -> tuple[dict, dict[str, tuple[int, ...]]]:
    """The zero adapter's config and {tensor name: shape}; every tensor must be zero."""
    folder = write_zero_adapter(base, tmp_path / "zero")
    config = json.loads((folder / "adapter_config.json").read_text())
    shapes = {}
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as handle:
        for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
            tensor = handle.get_tensor(key)
            assert not tensor.any(), key
            shapes[key] = tuple(tensor.shape)
    return config, shapes


def _lora_shapes(module: str, out: int) -> dict[str, tuple[int, int]]:
    prefix = f"base_model.model.model.layers.{{i}}.self_attn.{module}"
    return {
        **{(prefix + ".lora_A.weight").format(i=i): (1, HIDDEN) for i in range(LAYERS)},
        **{(prefix + ".lora_B.weight").format(i=i): (out, 1) for i in range(LAYERS)},
    }


def test_plain_checkpoint_gets_rank_1_on_q_and_v(tmp_path: Path):
    base = _base(
        tmp_path / "llama",
        _per_layer(
            **{
                "q_proj.weight": torch.ones(Q_OUT, HIDDEN, dtype=torch.bfloat16),
                "k_proj.weight": torch.ones(KV_OUT, HIDDEN, dtype=torch.bfloat16),
                "v_proj.weight": torch.ones(KV_OUT, HIDDEN, dtype=torch.bfloat16),
                "o_proj.weight": torch.ones(HIDDEN, Q_OUT, dtype=torch.bfloat16),
            }
        ),
    )
    config, shapes = _written(base, tmp_path)
    assert config["r"] == 1
    assert config["target_modules"] == ["q_proj", "v_proj"]
    assert shapes == _lora_shapes("q_proj", Q_OUT) | _lora_shapes("v_proj", KV_OUT)


def test_fused_qkv_checkpoint_gets_qkv_proj(tmp_path: Path):
    qkv_out = Q_OUT + 2 * KV_OUT
    base = _base(
        tmp_path / "phi3",
        _per_layer(
            **{
                "qkv_proj.weight": torch.ones(qkv_out, HIDDEN),
                "o_proj.weight": torch.ones(HIDDEN, Q_OUT),
            }
        ),
    )
    config, shapes = _written(base, tmp_path)
    assert config["target_modules"] == ["qkv_proj"]
    assert shapes == _lora_shapes("qkv_proj", qkv_out)


def test_gptq_checkpoint_is_sized_from_config(tmp_path: Path):
    """Packed int32 ``qweight`` shapes are not the layer's; the head counts are."""
    packed = {}
    for name, out in (("q_proj", Q_OUT), ("v_proj", KV_OUT)):
        packed[f"{name}.qweight"] = torch.zeros(HIDDEN // 8, out, dtype=torch.int32)
        packed[f"{name}.qzeros"] = torch.zeros(1, out // 8, dtype=torch.int32)
        packed[f"{name}.scales"] = torch.ones(1, out, dtype=torch.float16)
        packed[f"{name}.g_idx"] = torch.zeros(HIDDEN, dtype=torch.int32)
    base = _base(tmp_path / "gptq", _per_layer(**packed))
    config, shapes = _written(base, tmp_path)
    assert config["target_modules"] == ["q_proj", "v_proj"]
    assert shapes == _lora_shapes("q_proj", Q_OUT) | _lora_shapes("v_proj", KV_OUT)


def test_bitsandbytes_uint8_weight_is_not_taken_as_the_shape(tmp_path: Path):
    packed = {
        "qkv_proj.weight": torch.zeros((Q_OUT + 2 * KV_OUT) * HIDDEN // 2, 1, dtype=torch.uint8),
        "qkv_proj.weight.absmax": torch.ones(8),
    }
    base = _base(tmp_path / "bnb", _per_layer(**packed), {**CONFIG, "head_dim": HEAD_DIM})
    _, shapes = _written(base, tmp_path)
    assert shapes == _lora_shapes("qkv_proj", Q_OUT + 2 * KV_OUT)


def test_no_attention_projection_is_a_named_error(tmp_path: Path):
    base = _base(
        tmp_path / "gpt2",
        {"h.0.attn.c_attn.weight": torch.ones(HIDDEN, 3 * HIDDEN)},
        {"n_embd": HIDDEN},
    )
    with pytest.raises(NoZeroAdapterTarget, match="no q_proj/v_proj/qkv_proj layer"):
        write_zero_adapter(base, tmp_path / "zero")


def test_zero_adapter_passes_adapter_validation_at_max_lora_rank_1(tmp_path: Path):
    """The same check a user's adapter gets, with ``--max-lora-rank 1``."""
    base = _base(
        tmp_path / "phi3", _per_layer(**{"qkv_proj.weight": torch.ones(Q_OUT + 2 * KV_OUT, HIDDEN)})
    )
    folder = write_zero_adapter(base, tmp_path / "zero")
    info = inspect_adapter("zero", folder, BaseModel.from_folder("phi3", base), max_rank=1)
    assert info.rank == 1


class _Probe:
    """Counts calls and answers as told, to see when the policy consults the probe."""

    def __init__(self, answer: bool | None) -> None:
        self.answer, self.calls = answer, 0

    def __call__(self) -> bool | None:
        self.calls += 1
        return self.answer


@pytest.mark.parametrize(
    ("mode", "cpu_build", "probe_says", "route", "probed"),
    [
        ("on", False, False, ZERO, False),
        ("pinned", False, False, PINNED, False),
        ("off", True, True, DIRECT, False),
        ("auto", False, True, DIRECT, False),  # GPU builds: never, and no probe
        ("auto", True, True, PINNED, True),
        ("auto", True, False, DIRECT, True),
        ("auto", True, None, ZERO, True),  # cannot tell: keep the safest route
    ],
)
def test_how_base_requests_run(mode, cpu_build, probe_says, route, probed):
    probe = _Probe(probe_says)
    assert base_request_route(mode, cpu_build, probe) == route
    assert probe.calls == int(probed)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="auto, pinned, on, off"):
        base_request_route("sometimes", True, _Probe(True))


def _llama(tmp_path: Path) -> Path:
    return _base(
        tmp_path / "llama",
        _per_layer(**{"q_proj.weight": torch.ones(Q_OUT, HIDDEN, dtype=torch.bfloat16)}),
    )


def _routed(engine) -> dict:
    """``engine.engine_arguments()`` once its start-up chose the base route."""
    engine._base_route, engine._zero_adapter = engine._zero_lora_request()
    return engine.engine_arguments()


def test_pinned_adds_a_slot_and_the_scheduler_that_leaves_it_alone(tmp_path: Path):
    from engines.vllm import VLLMEngine
    from engines.vllm_lora_scheduler import QUALNAME, reserving_one_lora_slot

    engine = VLLMEngine(_llama(tmp_path), "m", enable_lora=True, base_via_zero_lora="pinned")
    arguments = _routed(engine)
    assert arguments["max_loras"] == engine.max_loras + 1
    assert arguments["scheduler_cls"] == QUALNAME
    assert arguments["worker_extension_cls"] == "engines.vllm_lora_worker.LoRAWorkerExtension"
    assert engine._lora_request(None) is None  # base requests carry no adapter

    from vllm.utils.import_utils import resolve_obj_by_qualname

    assert resolve_obj_by_qualname(QUALNAME) is reserving_one_lora_slot


def test_on_routes_base_requests_through_the_zero_adapter(tmp_path: Path):
    from engines.vllm import VLLMEngine
    from engines.vllm_zero_lora import ZERO_ADAPTER_ID

    engine = VLLMEngine(_llama(tmp_path), "m", enable_lora=True, base_via_zero_lora="on")
    arguments = _routed(engine)
    assert arguments["max_loras"] == engine.max_loras + 1
    assert "scheduler_cls" not in arguments
    assert engine._lora_request(None).lora_int_id == ZERO_ADAPTER_ID


@pytest.mark.parametrize("key", ["scheduler_cls", "worker_extension_cls"])
def test_pinned_falls_back_to_on_under_a_class_of_the_users(tmp_path: Path, key: str):
    from engines.vllm import VLLMEngine

    engine = VLLMEngine(
        _llama(tmp_path),
        "m",
        enable_lora=True,
        base_via_zero_lora="pinned",
        engine_args={key: "my.Class"},
    )
    assert _routed(engine)[key] == "my.Class"
    assert engine._lora_request(None) is not None


def test_the_scheduler_sees_one_slot_fewer_than_the_workers():
    from vllm.config.lora import LoRAConfig

    from engines.vllm_lora_scheduler import one_slot_fewer

    workers = LoRAConfig(max_loras=3, max_cpu_loras=5)
    scheduler = one_slot_fewer(workers)
    assert (scheduler.max_loras, workers.max_loras) == (2, 3)
    assert scheduler.max_cpu_loras == 5
    assert one_slot_fewer(None) is None


class _Slots:
    """A stand-in for ``AsyncLLM``'s LoRA calls, slotting adapters the way vLLM 0.32
    does (``add_lora`` activates in the first free slot; a pinned one stays), and
    answering the worker extension's calls (engines/vllm_lora_worker.py)."""

    def __init__(self, slots: int, held: tuple[int, ...] = (), first_free=True) -> None:
        self.slots: list[int | None] = [None] * slots
        for index, lora_id in enumerate(held):
            self.slots[index] = lora_id
        self.first_free, self.pinned, self.calls = first_free, set(), []

    async def list_loras(self) -> set[int]:
        return {i for i in self.slots if i is not None}

    async def add_lora(self, request) -> bool:
        free = [i for i, held in enumerate(self.slots) if held is None]
        self.slots[free[0] if self.first_free else free[-1]] = request.lora_int_id
        self.calls.append(("add", request.lora_int_id))
        return True

    async def pin_lora(self, lora_id: int) -> bool:
        self.pinned.add(lora_id)
        return True

    async def remove_lora(self, lora_id: int) -> bool:
        assert lora_id not in self.pinned
        self.slots[self.slots.index(lora_id)] = None
        return True

    async def collective_rpc(self, method: str, args: tuple = ()):
        if method == "lora_slot_index_of":
            return [self.slots.index(args[0]) if args[0] in self.slots else None]
        if method == "lora_slot_count":
            return [len(self.slots)]
        return [1]


def _pinned_engine(tmp_path: Path):
    from engines.vllm import VLLMEngine

    engine = VLLMEngine(
        _llama(tmp_path), "m", enable_lora=True, max_loras=3, base_via_zero_lora="pinned"
    )
    _routed(engine)
    return engine


def test_pinned_leaves_only_the_zero_adapter_in_the_last_slot(tmp_path: Path):
    from engines.vllm_zero_lora import ZERO_ADAPTER_ID

    engine, llm = _pinned_engine(tmp_path), _Slots(4)
    asyncio.run(engine._prepare_lora_workers(llm))
    assert llm.slots == [None, None, None, ZERO_ADAPTER_ID]
    assert llm.pinned == {ZERO_ADAPTER_ID}
    assert engine._lora_request(None) is None


def test_pinned_falls_back_to_on_where_the_slot_is_not_the_last(tmp_path: Path):
    """A vLLM that slotted adapters otherwise: base requests go through the adapter."""
    engine, llm = _pinned_engine(tmp_path), _Slots(4, first_free=False)
    asyncio.run(engine._prepare_lora_workers(llm))
    assert engine._lora_request(None) is not None


def test_pinned_refuses_an_engine_already_holding_adapters(tmp_path: Path):
    from engines.vllm_zero_lora import SlotsNotEmpty

    with pytest.raises(SlotsNotEmpty):
        asyncio.run(_pinned_engine(tmp_path)._prepare_lora_workers(_Slots(4, held=(5,))))
