"""One engine for several API processes (``--api-server-count``): what the supervisor
holds while the API processes run.

A backend that keeps its model in the API process (vLLM) launches the engine once in
the supervisor and hands each API process what connects it (vLLM's own ZMQ client
addresses, as ``vllm serve --api-server-count`` does); a backend with nothing to share
(remote upstreams, the synthetic engine) builds its engine in each process as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class SharedEngine(Protocol):
    """The supervisor's side of an engine that several API processes use."""

    def client_kwargs(self, index: int) -> dict:
        """More constructor arguments for API process ``index``'s engine."""

    def started(self, processes: Sequence) -> None:
        """The API processes are started (``multiprocessing`` processes): wait until the
        engine is up, failing if it or any of them exits first."""

    def sentinels(self) -> list:
        """What becomes ready when the engine's own processes exit (to watch them)."""

    def shutdown(self, timeout: float) -> None:
        """Stop the engine's processes, after the API processes have stopped."""


class Unshared:
    """Nothing to share: each API process builds its own engine."""

    def client_kwargs(self, index: int) -> dict:
        return {}

    def started(self, processes: Sequence) -> None:
        return None

    def sentinels(self) -> list:
        return []

    def shutdown(self, timeout: float) -> None:
        return None
