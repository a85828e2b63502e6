"""Adapter declaration, validation, ids and leases (no engine)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from lora.peft_folder import AdapterError, BaseModel
from lora.registry import AdapterConflict, AdapterNotFound, AdapterRegistry, read_modules_file

BASE = BaseModel(
    name="SmolLM2-135M-Instruct",
    path=Path("/models/SmolLM2-135M-Instruct"),
    module_names=frozenset({"model", "layers", "self_attn", "q_proj", "v_proj", "mlp", "up_proj"}),
)


def _adapter(root: Path, name: str, **config) -> Path:
    folder = root / name
    folder.mkdir()
    settings = {"peft_type": "LORA", "r": 8, "target_modules": ["q_proj", "v_proj"]} | config
    (folder / "adapter_config.json").write_text(json.dumps(settings))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    return folder


def test_ids_are_stable_and_never_reused(tmp_path: Path):
    registry = AdapterRegistry(base=BASE)
    a = registry.declare("a", _adapter(tmp_path, "a"))
    b = registry.declare("b", _adapter(tmp_path, "b"))
    assert (a.int_id, b.int_id) == (1, 2)
    assert registry.declare("a", tmp_path / "a") is a, "same name and path: idempotent"
    asyncio.run(registry.unload("a"))
    again = registry.declare("a", tmp_path / "a")
    assert again.int_id == 3


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"r": 64}, "above --max-lora-rank 16"),
        ({"target_modules": ["q_proj", "w_pack"]}, r"no module\(s\) w_pack"),
        ({"base_model_name_or_path": "meta-llama/Llama-3.1-8B"}, "trained on"),
        ({"peft_type": "IA3"}, "not LORA"),
    ],
)
def test_bad_adapters_are_named(tmp_path: Path, config: dict, message: str):
    registry = AdapterRegistry(base=BASE)
    with pytest.raises(AdapterError, match=message) as caught:
        registry.declare("bad", _adapter(tmp_path, "bad", **config))
    assert "'bad'" in str(caught.value)


def test_missing_files(tmp_path: Path):
    registry = AdapterRegistry(base=BASE)
    with pytest.raises(AdapterError, match="not a folder"):
        registry.declare("x", tmp_path / "nowhere")
    folder = _adapter(tmp_path, "y")
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterError, match="no adapter_model.safetensors"):
        registry.declare("y", folder)


@pytest.mark.parametrize(
    "config",
    [
        [1, 2],
        {"r": "8", "target_modules": ["q_proj"]},
        {"r": None, "target_modules": ["q_proj"]},
        {"r": 8, "target_modules": 5},
        {"r": 8, "target_modules": "(unclosed"},
        {"r": 8, "target_modules": ["q_proj"], "base_model_name_or_path": 5},
    ],
)
def test_malformed_configs_are_adapter_errors_naming_it_not_its_path(tmp_path, config):
    folder = _adapter(tmp_path, "odd")
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterError, match="'odd'") as caught:
        AdapterRegistry(base=BASE).declare("odd", folder)
    assert str(tmp_path) not in str(caught.value)


def test_unreadable_folders_are_adapter_errors_without_the_path(tmp_path: Path):
    registry = AdapterRegistry(base=BASE)
    folder = _adapter(tmp_path, "latin1")
    (folder / "adapter_config.json").write_bytes('{"r": 8, "x": "\xe9"}'.encode("latin-1"))
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = {
        "latin1": folder,  # not UTF-8
        "long": tmp_path / ("a" * 300),  # ENAMETOOLONG
        "nul": f"{tmp_path}/a\0b",
        "loop": tmp_path / "loop",  # a symlink loop
        "empty": empty,  # no adapter_config.json
        "nowhere": tmp_path / "nowhere",
    }
    for name, path in bad.items():
        with pytest.raises(AdapterError) as caught:
            registry.declare(name, path)
        message = str(caught.value)
        if name in ("nul", "loop"):  # refused before any look inside: the caller's own path
            assert "cannot be resolved" in message
        else:
            assert f"'{name}'" in message and str(tmp_path) not in message, message


def test_hub_style_base_name_is_accepted(tmp_path: Path):
    registry = AdapterRegistry(base=BASE)
    folder = _adapter(
        tmp_path, "hub", base_model_name_or_path="HuggingFaceTB/SmolLM2-135M-Instruct"
    )
    assert registry.declare("hub", folder).name == "hub"


def test_lookup_by_name_or_base_prefix(tmp_path: Path):
    registry = AdapterRegistry(base=BASE, separator=":")
    adapter = registry.declare("a", _adapter(tmp_path, "a"))
    assert registry.lookup("a") is adapter
    assert registry.lookup("SmolLM2-135M-Instruct:a") is adapter
    assert registry.lookup("other:a") is None
    assert registry.lookup("nope") is None


def test_conflict_and_confinement(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    outside = _adapter(tmp_path, "outside")
    inside = _adapter(root, "inside")
    (root / "escape").symlink_to(outside)
    registry = AdapterRegistry(base=BASE, roots=(root,))
    registry.declare_confined("a", str(inside))
    with pytest.raises(AdapterConflict):
        registry.declare_confined("a", str(_adapter(root, "other")))
    for path in (str(outside), str(root / ".." / "outside"), str(root / "escape")):
        with pytest.raises(AdapterError, match="outside the allowed"):
            registry.declare_confined("b", path)


def test_unload_waits_for_in_flight_requests(tmp_path: Path):
    freed = []

    async def on_retired(adapter):
        freed.append(adapter.name)

    async def scenario():
        registry = AdapterRegistry(base=BASE, on_retired=on_retired)
        adapter = registry.declare("a", _adapter(tmp_path, "a"))
        registry.acquire(adapter)
        await registry.unload("a")
        assert registry.lookup("a") is None, "new requests see it gone at once"
        assert freed == [], "the engine slot stays while a request uses it"
        with pytest.raises(AdapterNotFound):
            registry.acquire(adapter)
        await registry.release(adapter)
        assert freed == ["a"]
        with pytest.raises(AdapterNotFound):
            await registry.unload("a")

    asyncio.run(scenario())


def test_modules_file_json_and_yaml(tmp_path: Path):
    (tmp_path / "m.json").write_text(json.dumps([{"name": "a", "path": "/x"}]))
    (tmp_path / "m.yaml").write_text("- name: b\n  path: /y\n  description: demo\n")
    assert read_modules_file(tmp_path / "m.json") == [{"name": "a", "path": "/x"}]
    assert read_modules_file(tmp_path / "m.yaml")[0]["description"] == "demo"
    (tmp_path / "bad.json").write_text(json.dumps([{"name": "a"}]))
    with pytest.raises(AdapterError, match="no 'path'"):
        read_modules_file(tmp_path / "bad.json")
