"""``--config FILE``: a bad file is refused before anything loads, naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from openai_frontend.config import ServerConfig
from openai_frontend.default_model import default_model_dir, is_prepared
from openai_frontend.gateway_config import ConfigError, per_model_configs, read_config

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, named",
    [
        ("models: []", "models"),
        ("models: [{name: a, engine: tgi}]", "models.0.engine"),
        ("models: [{name: a, engine: remote}]", "needs 'upstreams'"),
        ("models: [{name: a, upstreams: ['http://x']}]", "only for 'engine: remote'"),
        ("models: [{name: a}, {name: a}]", "repeated: a"),
        ("models: [{name: a, colour: red}]", "models.0.colour"),
        ("models: [{name: a, engine_args: {tensor_parallel_size: 0}}]", "tensor_parallel_size"),
        (
            "models: [{name: a, engine: trtllm, engine_args: {distributed_executor_backend: ray}}]",
            "vLLM engine argument",
        ),
        ("models: [", "cannot read it"),
        (
            "models: [{name: a, engine: remote, upstreams: ['http://x'],"
            " engine_args: {max_num_seqs: 8}}]",
            "engine_args max_num_seqs: the remote engine",
        ),
        ("models: [{name: a, task: rerank}]", "models.0.task"),
        ("models: [{name: a, engine: trtllm, task: embed}]", "not supported by the TensorRT-LLM"),
        ("models: [{name: a, task: embed, loras: [{name: b, path: /b}]}]", "LoRA adapters"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, text, named):
    with pytest.raises(ConfigError) as refused:
        read_config(write(tmp_path, text))
    assert named in str(refused.value) and "gateway.yaml" in str(refused.value)


def test_each_entry_becomes_a_model_config_keeping_server_settings(tmp_path):
    gateway = read_config(
        write(
            tmp_path,
            f"""
models:
  - name: a
    model: {tmp_path}
    engine_args: {{max_model_len: 1024, tensor_parallel_size: 2,
                  distributed_executor_backend: ray, max_num_seqs: 8}}
    chat_template: chatml
    tool_call_parser: hermes
    reasoning_parser: qwen3
    sampling_defaults: {{temperature: 0.5}}
    loras: [{{name: p, path: /adapters/p}}]
  - name: b
    model: {tmp_path}
    engine: remote
    upstreams: [http://h1:8000, http://h2:8000]
    upstream_model: big
    routing: least-outstanding
""",
        )
    )
    (tmp_path / "config.json").write_text("{}")
    server = ServerConfig(model_path=tmp_path, served_model_name="x", port=9000, api_keys=("k",))
    a, b = per_model_configs(gateway, server, None)
    assert (a.served_model_name, a.engine, a.max_model_len) == ("a", "vllm", 1024)
    assert (a.tensor_parallel_size, a.distributed_executor_backend) == (2, "ray")
    assert a.engine_args == {"max_num_seqs": 8} and b.engine_args == {}  # vLLM's own
    assert (a.routing, b.routing) == ("affinity", "least-outstanding")
    assert a.chat_template == "chatml" and a.generation_overrides == {"temperature": 0.5}
    assert a.loras == (("p", "/adapters/p"),)
    assert (a.tool_call_parser, a.reasoning_parser, b.tool_call_parser) == ("hermes", "qwen3", None)
    assert (b.engine, b.upstreams, b.upstream_model) == (
        "remote",
        ("http://h1:8000", "http://h2:8000"),
        "big",
    )
    assert a.port == b.port == 9000 and a.api_keys == ("k",)  # server-wide settings stay


def test_a_bad_sampling_default_or_folder_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    server = ServerConfig(model_path=tmp_path, served_model_name="x")
    bad_default = read_config(
        write(
            tmp_path, f"models: [{{name: a, model: {tmp_path}, sampling_defaults: {{tempo: 1}}}}]"
        )
    )
    with pytest.raises(ConfigError, match=r"models.0.sampling_defaults"):
        per_model_configs(bad_default, server, None)
    no_folder = read_config(write(tmp_path, "models: [{name: a, model: /nowhere}]"))
    with pytest.raises(ConfigError, match=r"models.0.model: /nowhere"):
        per_model_configs(no_folder, server, None)


@pytest.mark.skipif(not is_prepared(default_model_dir()), reason="needs `make model` first")
@pytest.mark.parametrize(
    "text, named",
    [
        ("models: [{name: a, engine: tgi}]", "models.0.engine"),
        ("models: [{name: a, engine_args: {kv_cache_dtyp: fp8}}]", "kv_cache_dtyp"),
    ],
)
def test_serve_refuses_a_bad_config_before_loading(tmp_path, text, named):
    path = write(tmp_path, text)
    done = subprocess.run(
        [sys.executable, "-m", "openai_frontend", "serve", "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert named in done.stderr and "Traceback" not in done.stderr
