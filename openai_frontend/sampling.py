"""Turn a request into the engine-neutral :class:`engines.base.SamplingParams`.

Three layers, later ones winning: the model's generation_config.json defaults, the
server's ``--override-generation-config``, then the request. The result is checked
once against the context window and against what the engine declared it supports, so a
field is either honoured or rejected by name, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from engines.base import SamplingParams, StructuredOutput
from openai_frontend.errors import APIError
from openai_frontend.schemas.common import SamplingFields

#: generation_config.json keys that are sampling defaults (as vLLM reads them).
GENERATION_DEFAULT_KEYS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
_NEUTRAL = {f.name for f in fields(SamplingParams)}


def read_generation_defaults(model_dir: Path | None) -> dict:
    """Sampling defaults from the model's generation_config.json, if it has any."""
    if model_dir is None:
        return {}
    path = model_dir / "generation_config.json"
    if not path.is_file():
        return {}
    config = json.loads(path.read_text(encoding="utf-8"))
    return {key: config[key] for key in GENERATION_DEFAULT_KEYS if key in config}


def check_overrides(overrides: dict) -> dict:
    """Validate ``--override-generation-config`` keys before anything loads."""
    unknown = sorted(set(overrides) - _NEUTRAL)
    if unknown:
        raise ValueError(f"--override-generation-config: unknown keys {', '.join(unknown)}")
    return overrides


def token_budget(
    requested: int | None,
    prompt_tokens: int,
    max_model_len: int,
    param: str,
    default: int | None = None,
) -> int:
    """The max_tokens to use: as asked if it fits (400 if not); unasked, ``default``
    within the context left (None: all of it)."""
    if prompt_tokens >= max_model_len:
        raise APIError(
            f"This model's maximum context length is {max_model_len} tokens, but the prompt "
            f"has {prompt_tokens} tokens, leaving no room for a completion.",
            param="messages" if param == "max_completion_tokens" else "prompt",
            code="context_length_exceeded",
        )
    if requested is None:
        left = max_model_len - prompt_tokens
        return left if default is None else min(default, left)
    if prompt_tokens + requested > max_model_len:
        raise APIError(
            f"This model's maximum context length is {max_model_len} tokens. However, you "
            f"requested {prompt_tokens + requested} tokens ({prompt_tokens} in the prompt, "
            f"{requested} for the completion). Please reduce the prompt or {param}.",
            param=param,
            code="context_length_exceeded",
        )
    return requested


def build_sampling(
    request: SamplingFields,
    *,
    max_tokens: int,
    defaults: dict,
    supported: frozenset[str],
    logprobs: int | None = None,
    prompt_logprobs: int | None = None,
    structured_output: StructuredOutput | None = None,
    structural_tag: dict | None = None,
    priority: int = 0,
) -> SamplingParams:
    """Merge defaults and the request, then reject anything the engine cannot honour."""
    layered = dict(defaults)
    for name in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty"):
        value = getattr(request, name)
        if value is not None:
            layered[name] = value
    if layered.get("top_p") == 0:
        # A nucleus of zero probability mass holds only the most likely token.
        layered["top_p"] = 1.0
        layered["temperature"] = 0.0
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=layered.get("temperature"),
        top_p=layered.get("top_p"),
        top_k=layered.get("top_k"),
        min_p=layered.get("min_p"),
        repetition_penalty=layered.get("repetition_penalty"),
        seed=request.seed if request.seed is not None else defaults.get("seed"),
        stop=request.stop_strings() or tuple(defaults.get("stop", ())),
        stop_token_ids=tuple(request.stop_token_ids or defaults.get("stop_token_ids", ())),
        presence_penalty=_pick(request.presence_penalty, defaults, "presence_penalty"),
        frequency_penalty=_pick(request.frequency_penalty, defaults, "frequency_penalty"),
        min_tokens=_pick(request.min_tokens, defaults, "min_tokens"),
        ignore_eos=request.ignore_eos,
        logit_bias=request.logit_bias or None,
        logprobs=logprobs,
        prompt_logprobs=prompt_logprobs,
        include_stop_str_in_output=request.include_stop_str_in_output,
        skip_special_tokens=request.skip_special_tokens,
        spaces_between_special_tokens=request.spaces_between_special_tokens,
        structured_output=structured_output,
        structural_tag=structural_tag,
        priority=priority,
    )
    reject_unsupported(params, supported)
    return params


def _pick(value: object, defaults: dict, name: str) -> object:
    return value if value is not None else defaults.get(name)


def reject_unsupported(params: SamplingParams, supported: frozenset[str]) -> None:
    for name in sorted(params.fields_set() - supported):
        raise APIError(
            f"'{name}' is not supported by the engine serving this model.",
            param="response_format" if name == "structured_output" else name,
            code="unsupported_parameter",
        )
