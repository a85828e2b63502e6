"""Fields a router in front adds to every request body, accepted when they ask for nothing.

vllm-router (PyPI ``vllm-router``, vLLM's Rust router, 0.1.17 checked) parses each chat
and completions body into its own request type and serializes it again, so every field
that type defaults is written out, whether the client sent it or not. Most are fields we
serve (``ignore_eos``, ``skip_special_tokens``, ``continue_final_message``,
``include_reasoning``, ``echo``, ``logprobs``); the ones below are SGLang-era fields this
gateway has no counterpart for, and an unknown field is a 400 ("Unrecognized request
argument"), so without this rule every request through the router failed.

The rule: such a field is dropped when it carries exactly the value the router writes by
default, which asks for this gateway's own behaviour (so dropping it changes nothing). Any
other value asks for something this gateway does not do and stays refused by name, as an
unknown field does; every field not listed here stays refused for clients and routers
alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RouterField:
    """A field a router adds, the value it writes, and why dropping that value is safe."""

    name: str
    neutral: bool
    added_by: str
    why_safe: str


VLLM_ROUTER = "vllm-router (chat and completions bodies)"

ROUTER_FIELDS: tuple[RouterField, ...] = (
    RouterField(
        "no_stop_trim",
        False,
        VLLM_ROUTER,
        "false: stop strings are trimmed from the text, which this gateway always does "
        "(include_stop_str_in_output is the field that keeps them).",
    ),
    RouterField(
        "return_hidden_states",
        False,
        VLLM_ROUTER,
        "false: no hidden states in the answer; this gateway never returns them.",
    ),
    RouterField(
        "separate_reasoning",
        True,
        "vllm-router (chat bodies)",
        "true: reasoning goes in its own field (reasoning_content), which this gateway "
        "does whenever the model has a reasoning parser; without one there is none.",
    ),
    RouterField(
        "stream_reasoning",
        True,
        "vllm-router (chat bodies)",
        "true: reasoning is streamed as it is generated, which this gateway always does.",
    ),
)

_NEUTRAL = {field.name: field.neutral for field in ROUTER_FIELDS}


def drop_neutral_router_fields(body: Any) -> Any:
    """``body`` without the listed fields that hold their neutral value (same type too:
    ``0`` is not ``false``); anything else is left for validation to refuse."""
    if not isinstance(body, dict) or not _NEUTRAL.keys() & body.keys():
        return body
    return {
        key: value
        for key, value in body.items()
        if not (key in _NEUTRAL and type(value) is bool and value is _NEUTRAL[key])
    }
