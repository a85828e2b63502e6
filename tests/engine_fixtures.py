"""Engines for the conformance suite, each started once, driven on one event loop.

- ``vllm``: an in-process ``VLLMEngine`` (CPU here), LoRA on, with the demo adapters.
- ``remote``: a ``RemoteEngine`` whose upstream is the session's test server.
- ``trtllm``: a ``TRTLLMEngine``, only where ``tensorrt_llm`` imports and a GPU is
  present (see the README, "TensorRT-LLM"); skipped with that reason elsewhere.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
from dataclasses import dataclass

import pytest
from conftest import served_dtype
from demo_adapters import ensure_adapter

from engines import load_engine
from engines.base import Engine
from lora.registry import Adapter
from openai_frontend.default_model import MODEL_NAME, ensure_default_model

ENGINES = ("vllm", "remote", "trtllm")


def has_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


@dataclass
class EngineUnderTest:
    name: str
    engine: Engine
    runner: asyncio.Runner
    #: How each engine names the demo adapters (None: no LoRA on this engine).
    adapters: dict[str, Adapter] | None
    upstream_url: str | None = None
    upstream_headers: dict | None = None

    def run(self, coroutine):
        return self.runner.run(coroutine)


@pytest.fixture(scope="session")
def runner():
    with asyncio.Runner() as loop_runner:
        yield loop_runner


def _demo_adapters() -> dict[str, Adapter]:
    return {
        name: Adapter(name=name, path=ensure_adapter(name), int_id=index + 1, rank=8)
        for index, name in enumerate(("pirate", "robot"))
    }


@pytest.fixture(scope="session", params=ENGINES)
def engine(request, runner) -> EngineUnderTest:
    model = ensure_default_model()
    if request.param == "vllm":
        built = load_engine(
            "vllm",
            model_path=model,
            served_model_name=MODEL_NAME,
            enable_lora=True,
            max_loras=2,
            dtype=served_dtype(model),
        )
        under_test = EngineUnderTest("vllm", built, runner, _demo_adapters())
    elif request.param == "remote":
        server = request.getfixturevalue("server")
        built = load_engine(
            "remote",
            model_path=model,
            served_model_name=MODEL_NAME,
            upstreams=[server.base_url],
            api_key=server.api_key,
        )
        # The upstream serves the same demo adapters under the same names.
        under_test = EngineUnderTest(
            "remote", built, runner, _demo_adapters(), server.base_url, server.headers
        )
    else:
        if importlib.util.find_spec("tensorrt_llm") is None or not has_gpu():
            pytest.skip("TensorRT-LLM conformance needs tensorrt_llm and an NVIDIA GPU")
        built = load_engine(
            "trtllm",
            model_path=model,
            served_model_name=MODEL_NAME,
            enable_lora=True,
            max_loras=2,
            lora_dirs=[ensure_adapter(name) for name in ("pirate", "robot")],
        )
        under_test = EngineUnderTest("trtllm", built, runner, _demo_adapters())
    runner.run(built.start())
    try:
        yield under_test
    finally:
        runner.run(built.shutdown())
