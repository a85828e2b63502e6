"""What ``VLLMEngine`` hands to vLLM's ``AsyncEngineArgs``, without loading a model.

``--engine-args`` goes over our own defaults: ``enable_prefix_caching`` is ours by
default (on for generation) and a user may turn it off there; before, the same key was
passed twice and the engine failed to start with a TypeError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.vllm import VLLMEngine


def engine(**fields) -> VLLMEngine:
    return VLLMEngine(Path("/models/m"), "m", **fields)


def test_our_defaults_reach_vllm():
    arguments = engine(dtype="float32").engine_arguments()
    assert arguments["model"] == "/models/m" and arguments["served_model_name"] == "m"
    assert arguments["dtype"] == "float32" and arguments["enable_prefix_caching"] is True


def test_engine_args_override_our_defaults_and_add_fields():
    overridden = engine(engine_args={"enable_prefix_caching": False, "max_num_seqs": 8})
    assert overridden.engine_arguments()["enable_prefix_caching"] is False
    assert overridden.engine_arguments()["max_num_seqs"] == 8


def test_the_arguments_build_vllms_own_args_object():
    from vllm.engine.arg_utils import AsyncEngineArgs

    built = AsyncEngineArgs(
        **engine(engine_args={"enable_prefix_caching": False}).engine_arguments()
    )
    assert built.enable_prefix_caching is False


def test_a_flag_owned_field_is_refused_by_name():
    with pytest.raises(ValueError, match="dtype is set by --dtype"):
        engine(engine_args={"dtype": "half"})


@pytest.mark.parametrize(
    "key, value, flag",
    [
        ("runner", "pooling", "--task"),
        ("convert", "embed", "--task"),
        ("skip_tokenizer_init", True, "the gateway"),
        ("tokenizer_mode", "mistral", "the gateway"),
    ],
)
def test_fields_our_flags_or_the_gateway_set_are_refused(key, value, flag):
    """Before, ``runner`` in --engine-args silently replaced what --task chose, and
    ``skip_tokenizer_init`` left every reply without text."""
    with pytest.raises(ValueError, match=f"{key} is set by {flag}"):
        engine(engine_args={key: value})
