"""On-demand adapters (lora.on_demand) without an engine: confinement, single flight,
declared only once loaded, LRU eviction that spares adapters in use. The engine's load
is a counting stand-in."""

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


@pytest.mark.parametrize("name", ["é" * 130, "a" * 256, "\ud800", "a\0b"])
def test_names_no_file_can_have_are_not_found(tmp_path: Path, name: str):
    """Too long for a file name (ENAMETOOLONG), not encodable, or holding NUL."""
    assert confined_folder((tmp_path,), name) is None
    on_demand, _ = loader(tmp_path)
    assert on_demand.find(name) is None
    assert on_demand.find(f"{BASE.name}:{name}") is None


def test_a_lookup_finds_the_folder_but_only_a_load_declares_it(tmp_path: Path):
    on_demand, loads = loader(tmp_path)
    assert on_demand.find("pirate") is None
    _adapter(tmp_path, "pirate")  # copied in after start
    first = on_demand.find(f"{BASE.name}:pirate")
    assert first is not None and first.name == "pirate"
    assert on_demand.find("pirate") is first, "one adapter (one id) for every lookup"
    assert on_demand.registry.adapters() == [], "found, not declared"
    asyncio.run(use(on_demand, first))
    assert on_demand.registry.adapters() == [first] and loads.loaded == ["pirate"]
    assert on_demand.find("pirate") is first
    _adapter(tmp_path, "wide", r=64)
    with pytest.raises(AdapterError, match="max-lora-rank"):
        on_demand.find("wide")


async def use(on_demand: OnDemandAdapters, adapter, hold: bool = False):
    """One request: hold the adapter (loading it if need be), then let it go."""
    await on_demand.hold(adapter)
    if not hold:
        await on_demand.registry.release(adapter)
    return adapter


def test_concurrent_first_requests_load_once(tmp_path: Path):
    _adapter(tmp_path, "pirate")
    on_demand, loads = loader(tmp_path)

    async def scenario():
        await asyncio.gather(*(use(on_demand, on_demand.find("pirate")) for _ in range(10)))

    asyncio.run(scenario())
    assert loads.loaded == ["pirate"]
    assert on_demand.registry.in_flight(on_demand.find("pirate")) == 0


def test_least_recently_used_idle_adapter_is_evicted_never_one_in_use(tmp_path: Path):
    for name in ("a", "b", "c", "d"):
        _adapter(tmp_path, name)
    on_demand, loads = loader(tmp_path, max_loaded=2)
    registry = on_demand.registry
    evicted: list[str] = []
    on_demand.on_evict = evicted.append

    async def scenario():
        a = await use(on_demand, on_demand.find("a"), hold=True)  # a stays in use
        await use(on_demand, on_demand.find("b"))
        await use(on_demand, on_demand.find("c"))  # a is older but busy: b goes
        assert evicted == ["b"]
        await use(on_demand, on_demand.find("d"))  # c is the only idle one
        assert evicted == ["b", "c"]
        assert {x.name for x in registry.adapters()} == {"a", "d"}
        await registry.release(a)
        await use(on_demand, on_demand.find("b"))  # back: a is now the least recently used
        assert evicted == ["b", "c", "a"]

    asyncio.run(scenario())
    assert loads.loaded == ["a", "b", "c", "d", "b"]


def test_adapters_looked_up_but_never_loaded_are_neither_declared_nor_counted(tmp_path: Path):
    """A /tokenize, or a request refused before it runs, must not push out an adapter
    that really is loaded."""
    for name in ("a", "b", "c", "d"):
        _adapter(tmp_path, name)
    on_demand, loads = loader(tmp_path, max_loaded=2)
    evicted: list[str] = []
    on_demand.on_evict = evicted.append

    async def scenario():
        await use(on_demand, on_demand.find("a"))
        await use(on_demand, on_demand.find("b"))
        assert on_demand.find("c") is not None  # looked up, never run
        await use(on_demand, on_demand.find("d"))  # room for d: a goes, b stays

    asyncio.run(scenario())
    assert evicted == ["a"] and loads.loaded == ["a", "b", "d"]
    assert {x.name for x in on_demand.registry.adapters()} == {"b", "d"}


def test_an_adapter_evicted_before_its_request_started_is_loaded_again(tmp_path: Path):
    for name in ("a", "b"):
        _adapter(tmp_path, name)
    on_demand, loads = loader(tmp_path, max_loaded=1)

    async def scenario():
        a = await use(on_demand, on_demand.find("a"))
        looked_up = on_demand.find("a")  # then waits (e.g. in the admission queue)
        await use(on_demand, on_demand.find("b"))  # evicts a, which nobody holds
        assert on_demand.registry.lookup("a") is None
        await use(on_demand, looked_up, hold=True)  # a's request starts after all
        assert on_demand.registry.lookup("a") is a and on_demand.registry.in_flight(a) == 1

    asyncio.run(scenario())
    assert loads.loaded == ["a", "b", "a"]


def test_a_request_that_leaves_while_its_adapter_loads_holds_nothing(tmp_path: Path):
    _adapter(tmp_path, "pirate")
    on_demand, loads = loader(tmp_path)

    async def scenario():
        adapter = on_demand.find("pirate")
        waiting = asyncio.ensure_future(on_demand.hold(adapter))
        await asyncio.sleep(0.01)
        waiting.cancel()  # the client went away; the load goes on for the next request
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await use(on_demand, on_demand.find("pirate"))
        return adapter

    adapter = asyncio.run(scenario())
    assert loads.loaded == ["pirate"] and on_demand.registry.in_flight(adapter) == 0


def test_a_load_the_engine_refuses_fails_every_waiter_and_is_not_declared(tmp_path: Path):
    _adapter(tmp_path, "broken")
    registry = AdapterRegistry(base=BASE, roots=(tmp_path,))
    calls = []

    async def refuse(adapter) -> None:
        calls.append(adapter.name)
        await asyncio.sleep(0.01)
        raise ValueError("bad weights")

    on_demand = OnDemandAdapters(registry, (tmp_path,), 2, refuse)

    async def scenario():
        requests = (use(on_demand, on_demand.find("broken")) for _ in range(3))
        return await asyncio.gather(*requests, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, ValueError) for o in outcomes) and calls == ["broken"]
    assert registry.lookup("broken") is None and registry.adapters() == []
    outcomes = asyncio.run(scenario())  # the next requests try afresh
    assert all(isinstance(o, ValueError) for o in outcomes) and calls == ["broken"] * 2
