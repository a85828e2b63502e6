"""Adapters loaded on first use from a ``--lora-root`` folder (``--lora-on-demand``).

A request for model ``NAME`` (or ``BASE:NAME``) that no loaded adapter answers looks for
the folder ``ROOT/NAME``. The name must be one plain path component that a file can
have, and the folder must resolve (symlinks followed) inside the root: ``..``, absolute
paths, names too long for a file and links that lead out are simply not found. A folder
that is there is validated as any adapter (PEFT LoRA, for this base) and remembered, so
requests racing for a new name all get the same adapter (one id) and await one engine
load (single flight). Only that load declares it: a lookup that loads nothing (a
``/tokenize``, a request refused before it runs) neither lists it in ``/v1/models`` nor
counts it against ``max_loaded``.

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
    plain folder name, is no name a file can have, or its folder resolves outside the
    root."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return None
    for root in roots:
        root = root.resolve()
        try:
            folder = (root / name).resolve()
            if folder != root and folder.is_relative_to(root) and folder.is_dir():
                return folder
        except (OSError, ValueError, RuntimeError):  # too long, NUL, a symlink loop...
            continue
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
    #: Validated adapters not loaded yet, by name (at most one per adapter folder).
    _found: dict[str, Adapter] = field(default_factory=dict)
    #: Engine loads in progress, by name.
    _loads: dict[str, asyncio.Future] = field(default_factory=dict)
    #: Names this loader loaded (adapters declared at start are never evicted).
    _ours: set[str] = field(default_factory=set)
    #: Adapter names, least recently used first.
    _recent: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def find(self, name: str) -> Adapter | None:
        """The adapter ``name`` names: a declared one, else the one whose folder is in a
        root (validated, but declared only once loaded); None when there is no such
        folder. Raises AdapterError when the folder is no adapter."""
        adapter = self.registry.lookup(name)
        if adapter is not None:
            return adapter
        wanted = self.registry.adapter_name(name)
        folder = confined_folder(self.roots, wanted)
        if folder is None:
            self._found.pop(wanted, None)
            return None
        found = self._found.get(wanted)
        if found is None or found.path != folder:
            found = self._found[wanted] = self.registry.prepare(wanted, folder)
        return found

    async def hold(self, adapter: Adapter) -> None:
        """Count a request as using ``adapter``, once it is in the engine: the first
        caller loads it, the rest await that same load. One evicted before its request
        could hold it is loaded again; a load that fails fails every waiter."""
        while not self._acquired(adapter):
            load = self._loads.get(adapter.name)
            if load is None:
                load = self._loads[adapter.name] = asyncio.ensure_future(self._load(adapter))
            await asyncio.shield(load)

    def _acquired(self, adapter: Adapter) -> bool:
        """Hold ``adapter`` if it is declared; AdapterNotFound if another took its name."""
        if self.registry.lookup(adapter.name) is None:
            return False
        self.registry.acquire(adapter)
        if adapter.name in self._ours:
            self._recent[adapter.name] = None
            self._recent.move_to_end(adapter.name)
        return True

    async def _load(self, adapter: Adapter) -> None:
        try:
            if not self.registry.vacant(adapter):
                raise AdapterNotFound(f"adapter '{adapter.name}' was unloaded")
            await self._trim(keep=adapter.name)
            await self.load(adapter)
            self.registry.reinstate(adapter)
        finally:
            self._loads.pop(adapter.name, None)
        if self._found.get(adapter.name) is adapter:
            del self._found[adapter.name]
        self._ours.add(adapter.name)
        self._recent[adapter.name] = None
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
            if adapter is None:  # unloaded through the admin API meanwhile
                self._recent.pop(name, None)
                continue
            if name == keep or self.registry.in_flight(adapter):
                continue
            self._recent.pop(name, None)
            self._ours.discard(name)
            await self.registry.unload(name)
            log.info("adapter '%s' evicted (least recently used)", name)
            self.on_evict(name)
            excess -= 1
