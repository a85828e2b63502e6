"""On-demand adapters (lora.on_demand) without an engine: confinement, single flight,
LRU eviction that spares adapters in use. The engine's load is a counting stand-in."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from test_lora_registry import BASE, _adapter

from lora.on_demand import OnDemandAdapters, confined_folder
from lora.peft_folder import AdapterError
from lora.registry import AdapterRegistry


class CountingLoads:
    """Records engine loads; each takes a moment, so racing callers overlap."""

    def __init__(self) -> None:
        self.loaded: list[str] = []

    async def __call__(self, adapter) -> None:
        await asyncio.sleep(0.05)
        self.loaded.append(adapter.name)


def loader(root: Path, max_loaded: int = 2) -> tuple[OnDemandAdapters, CountingLoads]:
    loads = CountingLoads()
    registry = AdapterRegistry(base=BASE, roots=(root,))
    return OnDemandAdapters(registry, (root,), max_loaded, loads), loads


def test_names_are_confined_to_the_root(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    _adapter(root, "pirate")
    outside = _adapter(tmp_path, "outside")
    os.symlink(outside, root / "escape")
    os.symlink(root / "pirate", root / "alias")
    assert confined_folder((root,), "pirate") == (root / "pirate").resolve()
    assert confined_folder((root,), "alias") == (root / "pirate").resolve()  # inside: fine
    for name in ("..", ".", "../outside", str(outside), "escape", "pirate/..", "", "nope"):
        assert confined_folder((root,), name) is None, name


def test_a_request_name_declares_the_folder_once(tmp_path: Path):
    on_demand, _ = loader(tmp_path)
    assert on_demand.find("pirate") is None
    _adapter(tmp_path, "pirate")  # copied in after start
    first = on_demand.find(f"{BASE.name}:pirate")
    assert first is not None and first.name == "pirate"
    assert on_demand.find("pirate") is first
    _adapter(tmp_path, "wide", r=64)
    with pytest.raises(AdapterError, match="max-lora-rank"):
        on_demand.find("wide")


def test_concurrent_first_requests_load_once(tmp_path: Path):
    _adapter(tmp_path, "pirate")
    on_demand, loads = loader(tmp_path)

    async def first_request():
        adapter = on_demand.find("pirate")
        on_demand.acquire(adapter)
        await on_demand.ready(adapter)
        await on_demand.registry.release(adapter)

    async def scenario():
        await asyncio.gather(*(first_request() for _ in range(10)))

    asyncio.run(scenario())
    assert loads.loaded == ["pirate"]


def test_least_recently_used_idle_adapter_is_evicted_never_one_in_use(tmp_path: Path):
    for name in ("a", "b", "c", "d"):
        _adapter(tmp_path, name)
    on_demand, loads = loader(tmp_path, max_loaded=2)
    registry = on_demand.registry
    evicted: list[str] = []
    on_demand.on_evict = evicted.append

    async def use(name: str, hold: bool = False):
        adapter = on_demand.find(name)
        on_demand.acquire(adapter)
        await on_demand.ready(adapter)
        if not hold:
            await registry.release(adapter)
        return adapter

    async def scenario():
        a = await use("a", hold=True)  # a stays in use
        await use("b")
        await use("c")  # a is older but busy: b goes
        assert evicted == ["b"]
        await use("d")  # c is the only idle one
        assert evicted == ["b", "c"]
        assert {x.name for x in registry.adapters()} == {"a", "d"}
        await registry.release(a)
        await use("b")  # back again: a is now the least recently used idle one
        assert evicted == ["b", "c", "a"]

    asyncio.run(scenario())
    assert loads.loaded == ["a", "b", "c", "d", "b"]


def test_an_adapter_evicted_before_its_request_started_is_reinstated(tmp_path: Path):
    for name in ("a", "b"):
        _adapter(tmp_path, name)
    on_demand, loads = loader(tmp_path, max_loaded=1)

    async def scenario():
        a = on_demand.find("a")  # looked up, then waits (e.g. in the admission queue)
        b = on_demand.find("b")
        on_demand.acquire(b)
        await on_demand.ready(b)  # evicts a, which nobody holds yet
        on_demand.acquire(a)  # a's request starts after all
        await on_demand.ready(a)
        assert on_demand.registry.lookup("a") is a

    asyncio.run(scenario())
    assert loads.loaded == ["b", "a"]


def test_a_load_the_engine_refuses_fails_every_waiter_and_is_undeclared(tmp_path: Path):
    _adapter(tmp_path, "broken")
    registry = AdapterRegistry(base=BASE, roots=(tmp_path,))
    calls = []

    async def refuse(adapter) -> None:
        calls.append(adapter.name)
        await asyncio.sleep(0.01)
        raise ValueError("bad weights")

    on_demand = OnDemandAdapters(registry, (tmp_path,), 2, refuse)

    async def request():
        adapter = on_demand.find("broken")
        on_demand.acquire(adapter)
        try:
            await on_demand.ready(adapter)
        finally:
            await registry.release(adapter)

    async def scenario():
        return await asyncio.gather(*(request() for _ in range(3)), return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, ValueError) for o in outcomes) and calls == ["broken"]
    assert registry.lookup("broken") is None
