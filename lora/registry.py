"""The adapters a server knows, their stable ids, and who is using them right now."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from lora.peft_folder import AdapterError, BaseModel, inspect_adapter


@dataclass(frozen=True)
class Adapter:
    """One adapter; ``int_id`` is stable and never reused while the server runs."""

    name: str
    path: Path
    int_id: int
    rank: int
    description: str | None = None


class AdapterConflict(AdapterError):
    """The name is taken by an adapter at another path (HTTP 409)."""


class AdapterNotFound(AdapterError):
    """No adapter by that name (HTTP 404)."""


@dataclass
class _Entry:
    adapter: Adapter
    in_flight: int = 0


@dataclass
class AdapterRegistry:
    base: BaseModel
    max_rank: int = 16
    separator: str = ":"
    #: Directories that run-time loads must stay inside (after resolving symlinks).
    roots: tuple[Path, ...] = ()
    _entries: dict[str, _Entry] = field(default_factory=dict)
    #: Unloaded adapters whose last requests are still running, by int_id.
    _retiring: dict[int, _Entry] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    #: Called when a retired adapter's last request ends, to free its engine slot.
    on_retired: Callable[[Adapter], Awaitable[None]] | None = None

    def declare(self, name: str, path: Path | str, description: str | None = None) -> Adapter:
        """Validate and add an adapter; idempotent for the same name and path."""
        resolved = _resolve(path)
        existing = self._entries.get(name)
        if existing is not None:
            if existing.adapter.path == resolved:
                return existing.adapter
            raise AdapterConflict(
                f"adapter '{name}' is already loaded from {existing.adapter.path}; unload it first"
            )
        adapter = self.prepare(name, resolved, description)
        self._entries[name] = _Entry(adapter)
        return adapter

    def prepare(self, name: str, path: Path, description: str | None = None) -> Adapter:
        """Validate an adapter and give it its id, without declaring it: an on-demand
        adapter is declared (:meth:`reinstate`) only once the engine has loaded it."""
        if not name or self.separator in name or name == self.base.name:
            raise AdapterError(
                f"adapter name {name!r} is empty, holds {self.separator!r}, or is the base's"
            )
        info = inspect_adapter(name, path, self.base, self.max_rank)
        return Adapter(name, path, next(self._ids), info.rank, description)

    def declare_confined(self, name: str, path: str) -> Adapter:
        """A run-time load: the path must resolve inside one of the roots."""
        resolved = _resolve(path)
        if not any(resolved.is_relative_to(root.resolve()) for root in self.roots):
            raise AdapterError(f"lora_path {path!r} is outside the allowed --lora-root directories")
        return self.declare(name, resolved)

    def adapters(self) -> list[Adapter]:
        return [entry.adapter for entry in self._entries.values()]

    def adapter_name(self, model: str) -> str:
        """The adapter name in a request's ``model`` (``ADAPTER`` or ``BASE{sep}ADAPTER``)."""
        prefix = self.base.name + self.separator
        return model[len(prefix) :] if model.startswith(prefix) else model

    def lookup(self, model: str) -> Adapter | None:
        """The adapter a request's ``model`` names (``ADAPTER`` or ``BASE{sep}ADAPTER``)."""
        entry = self._entries.get(self.adapter_name(model))
        return entry.adapter if entry is not None else None

    def vacant(self, adapter: Adapter) -> bool:
        """Whether ``adapter`` may be declared: its name is free and its id not retiring."""
        return adapter.name not in self._entries and adapter.int_id not in self._retiring

    def reinstate(self, adapter: Adapter) -> None:
        """Declare a prepared or unloaded adapter under its own id (an on-demand adapter
        the engine has just loaded, maybe again after an eviction)."""
        if not self.vacant(adapter):
            raise AdapterNotFound(f"adapter '{adapter.name}' was unloaded")
        self._entries[adapter.name] = _Entry(adapter)

    def acquire(self, adapter: Adapter) -> None:
        """Count a request as using ``adapter``; it may have been unloaded since lookup."""
        entry = self._entries.get(adapter.name)
        if entry is None or entry.adapter is not adapter:
            raise AdapterNotFound(f"adapter '{adapter.name}' was unloaded")
        entry.in_flight += 1

    async def release(self, adapter: Adapter) -> None:
        entry = self._retiring.get(adapter.int_id)
        if entry is not None:
            entry.in_flight -= 1
            if entry.in_flight == 0:
                await self._drop(entry)
            return
        entry = self._entries.get(adapter.name)
        if entry is not None and entry.adapter is adapter:
            entry.in_flight -= 1

    def in_flight(self, adapter: Adapter) -> int:
        entry = self._retiring.get(adapter.int_id) or self._entries.get(adapter.name)
        return entry.in_flight if entry is not None and entry.adapter is adapter else 0

    async def unload(self, name: str) -> Adapter:
        """New requests get 404 at once; the engine slot goes when the last one ends."""
        entry = self._entries.pop(name, None)
        if entry is None:
            raise AdapterNotFound(f"no adapter named '{name}' is loaded")
        if entry.in_flight == 0:
            await self._drop(entry)
        else:
            self._retiring[entry.adapter.int_id] = entry
        return entry.adapter

    async def _drop(self, entry: _Entry) -> None:
        self._retiring.pop(entry.adapter.int_id, None)
        if self.on_retired is not None:
            await self.on_retired(entry.adapter)


def _resolve(path: Path | str) -> Path:
    """``path`` with symlinks followed; AdapterError for one that cannot be (a NUL byte,
    a symlink loop, a name no file system can encode)."""
    try:
        return Path(path).resolve()
    except (OSError, ValueError, RuntimeError):
        raise AdapterError(f"path {str(path)!r} cannot be resolved") from None


def read_modules_file(path: Path) -> list[dict]:
    """``--lora-modules-file``: JSON or YAML, a list of {name, path, base_model_name,
    description}."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        entries = yaml.safe_load(text)
    else:
        entries = json.loads(text)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise AdapterError(f"{path}: expected a list of adapter objects")
    for entry in entries:
        for key in ("name", "path"):
            if key not in entry:
                raise AdapterError(f"{path}: an adapter entry has no '{key}'")
    return entries
