"""``--scheduling-policy`` reaches the engines that schedule: vLLM's own scheduler, and
the remote engine (whose upstreams must run the same policy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from openai_frontend.cli import build_parser, engine_kwargs
from openai_frontend.config import ServerConfig


def test_the_flag_defaults_to_fcfs_and_takes_priority():
    parser = build_parser()
    assert parser.parse_args(["serve"]).scheduling_policy == "fcfs"
    given = parser.parse_args(["serve", "--scheduling-policy", "priority"])
    assert given.scheduling_policy == "priority"
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--scheduling-policy", "lifo"])


@pytest.mark.parametrize("engine", ["vllm", "remote"])
def test_the_policy_is_passed_to_the_engine(engine):
    upstreams = ("http://a",) if engine == "remote" else ()
    config = ServerConfig(
        model_path=Path("/m"),
        served_model_name="m",
        engine=engine,
        upstreams=upstreams,
        dtype="float32",
        scheduling_policy="priority",
    )
    assert engine_kwargs(config, enable_lora=False)["scheduling_policy"] == "priority"
