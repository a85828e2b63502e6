"""The frontend's side of LoRA: building the registry from flags, and request leases."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from engines.base import Engine
from lora.on_demand import OnDemandAdapters
from lora.peft_folder import AdapterError, BaseModel
from lora.registry import Adapter, AdapterRegistry, read_modules_file
from openai_frontend.config import ServerConfig

log = logging.getLogger(__name__)


def lora_enabled(config: ServerConfig) -> bool:
    return bool(
        config.loras
        or config.lora_modules_file
        or config.enable_lora_management
        or config.lora_on_demand
    )


def build_registry(config: ServerConfig, engine: Engine) -> AdapterRegistry | None:
    """Validate every declared adapter before the engine loads; None without LoRA."""
    if not lora_enabled(config):
        return None
    base = BaseModel.from_folder(config.served_model_name, config.model_path)
    registry = AdapterRegistry(
        base=base,
        max_rank=config.max_lora_rank,
        separator=config.lora_separator,
        roots=tuple(Path(root).resolve() for root in config.lora_roots),
        on_retired=engine.remove_adapter,
    )
    for name, path, description in _declared(config, base):
        try:
            registry.declare(name, path, description)
        except AdapterError as exc:  # the operator's own flag: the path helps, and is theirs
            raise AdapterError(f"{exc} (path: {path})") from None
    return registry


def build_on_demand(
    config: ServerConfig, registry: AdapterRegistry | None, engine: Engine
) -> OnDemandAdapters | None:
    """``--lora-on-demand``: adapters from the ``--lora-root`` folders on first use."""
    if not config.lora_on_demand or registry is None:
        return None
    return OnDemandAdapters(
        registry=registry,
        roots=registry.roots,
        max_loaded=config.max_loras,
        load=engine.add_adapter,
    )


def declared_adapter_paths(config: ServerConfig) -> list[Path]:
    """Folders of every adapter declared at start, for engines that must know them then
    (TensorRT-LLM sizes its LoRA cache from them)."""
    return [Path(entry["path"]).resolve() for entry in _entries(config)]


def _entries(config: ServerConfig) -> list[dict]:
    """Adapters declared by --lora / a config file, then by --lora-modules-file."""
    entries = [{"name": name, "path": path} for name, path in config.loras]
    if config.lora_modules_file:
        entries += read_modules_file(Path(config.lora_modules_file))
    return entries


def _declared(config: ServerConfig, base: BaseModel) -> list[tuple[str, str, str | None]]:
    declared = []
    for entry in _entries(config):
        wanted = entry.get("base_model_name")
        if wanted and not base.accepts(wanted):
            raise AdapterError(
                f"adapter '{entry['name']}' is for base model {wanted!r}, "
                f"but this server serves {base.name!r}"
            )
        declared.append((entry["name"], entry["path"], entry.get("description")))
    return declared


async def load_into_engine(registry: AdapterRegistry, engine: Engine) -> None:
    """Preload declared adapters; one the engine cannot load is dropped, not fatal."""
    for adapter in registry.adapters():
        try:
            await engine.add_adapter(adapter)
        except Exception as exc:
            log.error("dropping adapter '%s': %s", adapter.name, exc)
            await registry.unload(adapter.name)


@dataclass
class AdapterLease:
    """One request's hold on its adapter, from its first engine step to its last."""

    registry: AdapterRegistry
    adapter: Adapter
    on_demand: OnDemandAdapters | None = None
    _held: bool = field(default=False, init=False)

    def acquire(self) -> None:
        """Hold a declared adapter now; an on-demand one is held once loaded (ready)."""
        if self.on_demand is None:
            self.registry.acquire(self.adapter)
            self._held = True

    async def ready(self) -> None:
        if self.on_demand is not None:
            await self.on_demand.hold(self.adapter)
            self._held = True

    async def release(self) -> None:
        if self._held:
            self._held = False
            await self.registry.release(self.adapter)
