"""Validate a PEFT LoRA folder against the base model before any engine sees it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

CONFIG = "adapter_config.json"
WEIGHTS = "adapter_model.safetensors"


class AdapterError(ValueError):
    """An adapter cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class BaseModel:
    """What adapters are checked against: names and the module names of the weights."""

    name: str
    path: Path
    module_names: frozenset[str]

    @classmethod
    def from_folder(cls, name: str, path: Path) -> BaseModel:
        modules: set[str] = set()
        for weights in sorted(path.glob("*.safetensors")):
            with safe_open(str(weights), "pt") as handle:
                for key in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                    parts = key.split(".")
                    modules.update(parts[:-1])
        return cls(name=name, path=path.resolve(), module_names=frozenset(modules))

    def accepts(self, declared: str | None) -> bool:
        """Whether an adapter's ``base_model_name_or_path`` names this model."""
        if not declared:
            return True
        tail = declared.rstrip("/").rsplit("/", 1)[-1].lower()
        names = {self.name.lower(), self.path.name.lower(), str(self.path).lower()}
        return declared.lower() in names or tail in names


@dataclass(frozen=True)
class PeftInfo:
    rank: int
    target_modules: tuple[str, ...] | str
    base_model: str | None


def inspect_adapter(name: str, path: Path, base: BaseModel, max_rank: int) -> PeftInfo:
    """Read and check one adapter folder; raise :class:`AdapterError` naming it.

    The messages name the adapter, never its path: an on-demand adapter's path is the
    server's ``--lora-root``, which its callers have no business seeing.
    """
    config = _read_config(name, path)
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"adapter '{name}': peft_type {config.get('peft_type')!r} is not LORA")
    base_model = config.get("base_model_name_or_path")
    if base_model is not None and not isinstance(base_model, str):
        raise AdapterError(f"adapter '{name}': base_model_name_or_path is not a string")
    info = PeftInfo(
        rank=_rank(name, config.get("r", 0)),
        target_modules=_targets(name, config.get("target_modules")),
        base_model=base_model,
    )
    _check(name, info, base, max_rank)
    return info


def _read_config(name: str, path: Path) -> dict:
    """``adapter_config.json`` as a dict, once both files are there."""
    try:
        if not path.is_dir():
            raise AdapterError(f"adapter '{name}': its path is not a folder")
        for required in (CONFIG, WEIGHTS):
            if not (path / required).is_file():
                raise AdapterError(f"adapter '{name}': its folder has no {required}")
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except OSError as exc:  # unreadable, or a name too long: strerror leaves the path out
        raise AdapterError(f"adapter '{name}': its folder cannot be read: {exc.strerror}") from None
    except ValueError as exc:  # not JSON, not UTF-8
        raise AdapterError(f"adapter '{name}': unreadable {CONFIG}: {exc}") from None
    if not isinstance(config, dict):
        raise AdapterError(f"adapter '{name}': {CONFIG} is not a JSON object")
    return config


def _rank(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise AdapterError(f"adapter '{name}': rank {value!r} is not a positive integer")
    return value


def _targets(name: str, value: object) -> tuple[str, ...] | str:
    if isinstance(value, str):
        try:
            re.compile(value)  # a regular expression over full module names
        except re.error as exc:
            raise AdapterError(f"adapter '{name}': target_modules is no regex: {exc}") from None
        return value
    if value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return tuple(value or ())
    raise AdapterError(f"adapter '{name}': target_modules is not a string or a list of them")


def _check(name: str, info: PeftInfo, base: BaseModel, max_rank: int) -> None:
    if info.rank > max_rank:
        raise AdapterError(
            f"adapter '{name}': rank {info.rank} is above --max-lora-rank {max_rank}"
        )
    if isinstance(info.target_modules, str):
        pattern = re.compile(info.target_modules)
        if not any(pattern.search(module) for module in base.module_names):
            raise AdapterError(f"adapter '{name}': target_modules matches no module of the base")
    else:
        missing = sorted(set(info.target_modules) - base.module_names)
        if missing or not info.target_modules:
            raise AdapterError(
                f"adapter '{name}': the base model has no module(s) "
                f"{', '.join(missing) or '(none)'}"
            )
    if not base.accepts(info.base_model):
        raise AdapterError(
            f"adapter '{name}' was trained on {info.base_model!r}, not on {base.name!r}"
        )
