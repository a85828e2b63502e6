"""Adapters loaded on first use from a ``--lora-root`` folder (``--lora-on-demand``).

A request for model ``NAME`` (or ``BASE:NAME``) that no loaded adapter answers looks for
the folder ``ROOT/NAME``. The name must be one plain path component, and the folder must
resolve (symlinks followed) inside the root: ``..``, absolute paths and links that lead
out are simply not found. A folder that is there is validated as any adapter (PEFT LoRA,
for this base) and declared at once, synchronously, so requests racing for a new name
all find the same adapter; its engine load is one task they all await (single flight).

At most ``max_loaded`` adapters stay loaded: a new one evicts the least recently used
idle one. An adapter in use is never evicted (the registry's in-flight lease); if
every one is in use, the engine holds one more for a while, and the next load trims.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from lora.registry import Adapter, AdapterNotFound, AdapterRegistry

log = logging.getLogger(__name__)


def confined_folder(roots: tuple[Path, ...], name: str) -> Path | None:
    """``ROOT/NAME`` for the first root that has it, or None when ``name`` is not one
    plain folder name or its folder resolves outside the root."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return None
    for root in roots:
        root = root.resolve()
        folder = (root / name).resolve()
        if folder != root and folder.is_relative_to(root) and folder.is_dir():
            return folder
    return None


@dataclass
class OnDemandAdapters:
    registry: AdapterRegistry
    roots: tuple[Path, ...]
    max_loaded: int
    #: The engine's ``add_adapter``.
    load: Callable[[Adapter], Awaitable[None]]
    #: Called with an adapter's name after each engine load and each eviction.
    on_load: Callable[[str], None] = lambda name: None
    on_evict: Callable[[str], None] = lambda name: None
    _loads: dict[str, asyncio.Future] = field(default_factory=dict)
    #: Names this loader declared (adapters declared at start are never evicted).
    _ours: set[str] = field(default_factory=set)
    #: Adapter names, least recently used first.
    _recent: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def find(self, name: str) -> Adapter | None:
        """The adapter ``name`` names, declared now if its folder is in a root; None when
        there is no such folder. Raises AdapterError when the folder is no adapter."""
        adapter = self.registry.lookup(name)
        if adapter is None:
            wanted = self.registry.adapter_name(name)
            folder = confined_folder(self.roots, wanted)
            if folder is None:
                return None
            adapter = self.registry.declare(wanted, folder)
            self._ours.add(adapter.name)
        if adapter.name in self._ours:
            self._recent[adapter.name] = None
            self._recent.move_to_end(adapter.name)
        return adapter

    def acquire(self, adapter: Adapter) -> None:
        """Hold ``adapter`` for a request; one evicted since lookup is declared again."""
        try:
            self.registry.acquire(adapter)
        except AdapterNotFound:
            self.registry.reinstate(adapter)
            self.registry.acquire(adapter)

    async def ready(self, adapter: Adapter) -> None:
        """Wait until ``adapter`` is in the engine: the first caller loads it, the rest
        await that same load. A load that fails undeclares the adapter for everyone."""
        if adapter.name not in self._ours:
            return  # declared at start or by the admin endpoint: loaded already
        if adapter.name not in self._loads:
            self._loads[adapter.name] = asyncio.ensure_future(self._load(adapter))
        await asyncio.shield(self._loads[adapter.name])

    async def _load(self, adapter: Adapter) -> None:
        await self._trim(keep=adapter.name)
        try:
            await self.load(adapter)
        except Exception:
            self._loads.pop(adapter.name, None)
            self._recent.pop(adapter.name, None)
            await self.registry.unload(adapter.name)  # the next request tries afresh
            raise
        log.info("adapter '%s' loaded on demand from %s", adapter.name, adapter.path)
        self.on_load(adapter.name)

    async def _trim(self, keep: str) -> None:
        """Evict idle adapters, least recently used first, until ``keep`` fits."""
        loaded = [a for a in self.registry.adapters() if a.name != keep]
        excess = len(loaded) + 1 - self.max_loaded
        for name in list(self._recent):
            if excess <= 0:
                break
            adapter = self.registry.lookup(name)
            if name == keep or adapter is None or self.registry.in_flight(adapter):
                continue
            self._loads.pop(name, None)
            self._recent.pop(name, None)
            await self.registry.unload(name)
            log.info("adapter '%s' evicted (least recently used)", name)
            self.on_evict(name)
            excess -= 1
