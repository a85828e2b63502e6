"""Engine backends behind one Protocol (:mod:`engines.base`).

Backends are loaded by name so that importing the frontend never imports an engine
library: ``load_engine("vllm", ...)`` imports :mod:`engines.vllm` only when asked.
"""

from __future__ import annotations

import importlib

from engines.base import Engine
from engines.shared import SharedEngine, Unshared

BACKENDS = {
    "vllm": ("engines.vllm", "VLLMEngine"),
    "trtllm": ("engines.trtllm", "TRTLLMEngine"),
    "remote": ("engines.remote", "RemoteEngine"),
    "synthetic": ("engines.synthetic", "SyntheticTokenEngine"),
}

#: Backends whose engine the API processes of ``--api-server-count`` share, launched
#: once by the supervisor; every other backend builds one engine per API process.
SHARED_BACKENDS = {"vllm": ("engines.vllm_shared", "VLLMSharedCore")}


class EngineUnavailable(RuntimeError):
    """The chosen backend cannot be used on this machine (its library is missing)."""


def load_engine(backend: str, **kwargs: object) -> Engine:
    """Build the named backend's engine, importing its module only now."""
    try:
        module_name, class_name = BACKENDS[backend]
    except KeyError:
        raise EngineUnavailable(
            f"unknown engine {backend!r}; choose one of {', '.join(sorted(BACKENDS))}"
        ) from None
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(**kwargs)


def share_engine(backend: str, count: int, **kwargs: object) -> SharedEngine:
    """The engine ``count`` API processes use: launched here when the backend shares
    one (its module imported only now), else nothing to launch."""
    if backend not in SHARED_BACKENDS:
        return Unshared()
    module_name, class_name = SHARED_BACKENDS[backend]
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(count, **kwargs)
