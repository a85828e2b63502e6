"""``--config FILE``: several models in one gateway, declared in YAML.

    models:
      - name: smol                      # what clients put in "model"
        engine: vllm                    # vllm | trtllm | remote
        task: generate                  # generate (default) | embed: /v1/embeddings
        model: /models/SmolLM2          # HF folder: weights, tokenizer, chat template
        engine_args: {max_model_len: 4096, tensor_parallel_size: 2,
                      distributed_executor_backend: ray,
                      max_num_seqs: 64}       # and any other AsyncEngineArgs field
        chat_template: chatml           # optional override
        tool_call_parser: hermes        # optional; default: inferred from the template
        reasoning_parser: qwen3         # optional; likewise
        sampling_defaults: {temperature: 0.7}
        loras: [{name: pirate, path: /adapters/pirate}]
      - name: fast
        engine: trtllm                  # engine_args.llm_args: more tensorrt_llm.LLM kwargs
        engine_args: {llm_args: {kv_cache_config: {free_gpu_memory_fraction: 0.8}}}
      - name: big
        engine: remote
        model: /models/Big              # tokenizer and chat template only
        upstreams: [http://10.0.0.5:8000, http://10.0.0.6:8000]
        routing: affinity               # or least-outstanding
      - name: minilm                    # an embedding model next to the chat models
        task: embed
        model: /models/all-MiniLM-L6-v2

Validated with pydantic before anything loads; an error names the key, e.g.
``models.1.engine``. Each entry becomes a per-model :class:`ServerConfig` that keeps the
server-wide settings (host, access, limits) of the command line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from openai_frontend.config import ServerConfig
from openai_frontend.sampling import check_overrides

#: Why an embedding model cannot be served as asked (the CLI's flags say the same).
EMBED_NOT_ON_TRTLLM = (
    "task 'embed' is not supported by the TensorRT-LLM engine; serve it with vllm or remote"
)
EMBED_WITHOUT_LORA = "LoRA adapters are not supported on an embedding model (task 'embed')"


class ConfigError(ValueError):
    """The config file is unreadable or wrong; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EngineArgs(BaseModel):
    """Ours, typed here; any other key is the engine's own argument (vLLM's
    AsyncEngineArgs, TensorRT-LLM's LlmArgs), checked against its real list at start."""

    model_config = ConfigDict(extra="allow")

    max_model_len: int | None = Field(None, gt=0)
    dtype: str | None = None
    enforce_eager: bool = True
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    distributed_executor_backend: Literal["ray", "mp", "uni"] | None = None
    max_loras: int = Field(4, ge=1)
    max_lora_rank: int = Field(16, ge=1)
    max_cpu_loras: int | None = Field(None, ge=1)
    #: trtllm only: more keyword arguments for ``tensorrt_llm.LLM`` (its LlmArgs).
    llm_args: dict = {}


class LoraEntry(_Strict):
    name: str = Field(min_length=1)
    path: str = Field(min_length=1)


class ModelEntry(_Strict):
    name: str = Field(min_length=1)
    engine: Literal["vllm", "trtllm", "remote", "synthetic"] = "vllm"
    task: Literal["generate", "embed"] = "generate"
    model: str | None = None
    engine_args: EngineArgs = EngineArgs()
    chat_template: str | None = None
    tool_call_parser: str | None = None
    reasoning_parser: str | None = None
    sampling_defaults: dict = {}
    loras: list[LoraEntry] = []
    upstreams: list[str] = []
    upstream_model: str | None = None
    upstream_api_key: str | None = None
    routing: Literal["affinity", "least-outstanding"] = "affinity"

    @model_validator(mode="after")
    def _engine_fits(self) -> ModelEntry:
        if self.engine == "remote" and not self.upstreams:
            raise ValueError("a remote model needs 'upstreams': a list of base URLs")
        if self.engine != "remote" and self.upstreams:
            raise ValueError("'upstreams' is only for 'engine: remote'")
        if self.engine != "vllm" and self.engine_args.distributed_executor_backend:
            raise ValueError("'distributed_executor_backend' is a vLLM engine argument")
        if self.engine != "trtllm" and self.engine_args.llm_args:
            raise ValueError("'llm_args' is a TensorRT-LLM engine argument")
        if self.engine == "remote" and self.engine_args.model_extra:
            extra = ", ".join(sorted(self.engine_args.model_extra))
            raise ValueError(f"engine_args {extra}: the remote engine's upstreams take their own")
        if self.task == "embed" and self.engine == "trtllm":
            raise ValueError(EMBED_NOT_ON_TRTLLM)
        if self.task == "embed" and self.loras:
            raise ValueError(EMBED_WITHOUT_LORA)
        return self


class GatewayConfig(_Strict):
    models: list[ModelEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> GatewayConfig:
        names = [entry.name for entry in self.models]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"model names must be unique; repeated: {', '.join(repeated)}")
        return self


def read_config(path: Path) -> GatewayConfig:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None


def _default_folder(entry: ModelEntry, default_model: Path | None) -> Path | None:
    """The default model of the entry's task (the embedding one is prepared on demand)."""
    if entry.task != "embed":
        return default_model
    from openai_frontend.default_embed_model import ensure_default_embed_model

    return ensure_default_embed_model()


def per_model_configs(
    gateway: GatewayConfig, server: ServerConfig, default_model: Path | None
) -> list[ServerConfig]:
    """One :class:`ServerConfig` per entry: the entry's model settings, the server's rest."""
    configs = []
    for index, entry in enumerate(gateway.models):
        folder = Path(entry.model) if entry.model else _default_folder(entry, default_model)
        if folder is None or not (folder / "config.json").is_file():
            raise ConfigError(f"models.{index}.model: {folder} is not a Hugging Face model folder")
        args = entry.engine_args
        try:
            check_overrides(entry.sampling_defaults)
        except ValueError as exc:
            raise ConfigError(f"models.{index}.sampling_defaults: {exc}") from None
        configs.append(
            dataclasses.replace(
                server,
                model_path=folder.resolve(),
                served_model_name=entry.name,
                engine=entry.engine,
                task=entry.task,
                max_model_len=args.max_model_len,
                dtype=args.dtype,
                enforce_eager=args.enforce_eager,
                tensor_parallel_size=args.tensor_parallel_size,
                pipeline_parallel_size=args.pipeline_parallel_size,
                distributed_executor_backend=args.distributed_executor_backend,
                llm_args=args.llm_args,
                engine_args=dict(args.model_extra or {}),
                max_loras=args.max_loras,
                max_lora_rank=args.max_lora_rank,
                max_cpu_loras=args.max_cpu_loras,
                chat_template=entry.chat_template,
                tool_call_parser=entry.tool_call_parser,
                reasoning_parser=entry.reasoning_parser,
                generation_overrides=entry.sampling_defaults,
                loras=tuple((lora.name, lora.path) for lora in entry.loras),
                lora_modules_file=None,
                upstreams=tuple(entry.upstreams),
                upstream_model=entry.upstream_model,
                upstream_api_key=entry.upstream_api_key,
                routing=entry.routing,
            )
        )
    return configs
