"""The command line: refusals before anything loads, and a failed engine start."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from openai_frontend.default_model import default_model_dir, is_prepared

ROOT = Path(__file__).resolve().parents[1]


def _serve(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "openai_frontend", "serve", *args, "--port", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


def test_not_a_model_folder(tmp_path: Path):
    done = _serve(str(tmp_path))
    assert done.returncode == 2
    assert "not a Hugging Face model folder" in done.stderr


def test_lora_management_needs_key_and_root(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")
    done = _serve(str(tmp_path), "--enable-lora-management")
    assert done.returncode == 2
    assert "--admin-api-key" in done.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--max-queued-requests", "4"), "--max-queued-requests needs --max-concurrent-requests"),
        (("--engine", "remote"), "--engine remote needs at least one --upstream"),
        (("--upstream", "http://127.0.0.1:9"), "--upstream is for --engine remote"),
        (("--task", "embed", "--runner", "generate"), "--task and --runner disagree"),
        (("--runner", "pooling", "--engine", "trtllm"), "not supported by the TensorRT-LLM"),
        (("--task", "embed", "--lora=a=/nowhere"), "LoRA adapters are not supported on an emb"),
    ],
)
def test_flags_that_do_not_fit_together(tmp_path: Path, flags, message):
    (tmp_path / "config.json").write_text("{}")
    done = _serve(str(tmp_path), *flags)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--max-queued-requests", "-1", "an integer >= 0"),
        ("--request-timeout", "0", "a positive number"),
        ("--request-timeout", "nan", "a positive number"),
        ("--queue-timeout", "-2", "a positive number"),
        ("--max-request-bytes", "-5", "a positive integer"),
        ("--max-concurrent-requests", "0", "a positive integer"),
        ("--drain-timeout", "-1", "a number >= 0"),
        ("--tensor-parallel-size", "0", "a positive integer"),
    ],
)
def test_out_of_range_flag_values_are_refused_at_start(tmp_path: Path, flag, value, expected):
    """Before, ``--max-queued-requests -1`` made every waiting request a 429 and
    ``--request-timeout 0`` every request a 408; a negative byte cap was taken."""
    (tmp_path / "config.json").write_text("{}")
    done = _serve(str(tmp_path), f"{flag}={value}")
    assert done.returncode == 2
    assert (
        f"argument {flag}" in done.stderr and f"expected {expected}, got '{value}'" in done.stderr
    )


def test_queue_timeout_needs_a_queue(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")
    done = _serve(str(tmp_path), "--queue-timeout", "5")
    assert done.returncode == 2
    assert "--queue-timeout needs --max-concurrent-requests" in done.stderr


@pytest.mark.parametrize(
    "engine_args, message",
    [
        ('{"max_num_seqs": 4, "speculative_confg": {}}', "unknown vLLM engine argument(s): "),
        ('{"max_model_len": 64}', "max_model_len is set by --max-model-len"),
        ('{"runner": "pooling"}', "runner is set by --task (or --runner)"),
        ('{"skip_tokenizer_init": true}', "skip_tokenizer_init is set by the gateway"),
        ('["max_num_seqs"]', "expected a JSON object"),
    ],
)
def test_engine_args_are_checked_against_vllms_own_before_loading(tmp_path, engine_args, message):
    (tmp_path / "config.json").write_text("{}")
    done = _serve(str(tmp_path), "--engine-args", engine_args)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    if "unknown" in message:
        assert "speculative_confg" in done.stderr and "max_num_seqs" not in done.stderr


@pytest.mark.skipif(
    not is_prepared(default_model_dir()), reason="needs the default model: make model"
)
def test_bad_adapter_is_named_before_loading(tmp_path: Path):
    adapter = tmp_path / "wide"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"r": 512, "target_modules": ["q_proj"]})
    )
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    done = _serve(str(default_model_dir()), f"--lora=wide={adapter}")
    assert done.returncode == 2
    assert "adapter 'wide'" in done.stderr and "--max-lora-rank" in done.stderr


@pytest.mark.engine
@pytest.mark.skipif(
    not is_prepared(default_model_dir()), reason="needs the default model: make model"
)
def test_engine_that_cannot_load_exits_non_zero(tmp_path: Path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(default_model_dir() / name, broken / name)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    done = _serve(str(broken), timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "failed to start; stopping the server" in done.stderr
    assert "error: the engine failed" in done.stderr
