"""The neutral sampling object as engine keyword arguments, for backends to share.

vLLM's and TensorRT-LLM's ``SamplingParams`` use the same names for every field we map,
so one mapping serves both; each backend adds only its own extras and the name it gives
structured output. Pure, so it is unit-tested without either library.
"""

from __future__ import annotations

import json

from engines.base import InvalidRequest, SamplingParams

#: Fields passed under their own name when set (None leaves the engine's default).
PASSED_AS_IS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "min_tokens",
    "logprobs",
    "logit_bias",
)


def refuse_undeclared(params: SamplingParams, supported: frozenset[str], engine: str) -> None:
    """The engine's own guard: a field it did not declare is refused by name (the
    frontend refuses it first; this keeps the engine honest when driven directly)."""
    unsupported = params.fields_set() - supported
    if unsupported:
        name = sorted(unsupported)[0]
        raise InvalidRequest(f"{engine} does not support '{name}'", name)


def sampling_kwargs(params: SamplingParams) -> dict:
    """Keyword arguments shared by vLLM and TensorRT-LLM (structured output aside)."""
    kwargs: dict = {"max_tokens": params.max_tokens}
    for name in PASSED_AS_IS:
        value = getattr(params, name)
        if value is not None:
            kwargs[name] = value
    if params.stop:
        kwargs["stop"] = list(params.stop)
    if params.stop_token_ids:
        kwargs["stop_token_ids"] = list(params.stop_token_ids)
    kwargs["ignore_eos"] = params.ignore_eos
    kwargs["include_stop_str_in_output"] = params.include_stop_str_in_output
    kwargs["skip_special_tokens"] = params.skip_special_tokens
    kwargs["spaces_between_special_tokens"] = params.spaces_between_special_tokens
    return kwargs


def guide(params: SamplingParams) -> dict | None:
    """Structured output as both libraries spell its arguments (``json``,
    ``json_object``, or ``structural_tag`` as a JSON string), or None."""
    structured = params.structured_output
    if structured is None:
        if params.structural_tag is not None:
            return {"structural_tag": json.dumps(params.structural_tag)}
        return None
    if structured.json_schema is not None:
        return {"json": structured.json_schema}
    return {"json_object": True}
