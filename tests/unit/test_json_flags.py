"""The flags whose value is one JSON object (``serve --engine-args`` and
``--override-generation-config``, ``bench --extra-body``) share one parser: each takes an
object and exits 2 naming the flag and what is wrong with anything else, before anything
loads or is sent (``--override-generation-config`` took any JSON: a list got past it)."""

from __future__ import annotations

import pytest

from openai_frontend.cli import build_parser

FLAGS = [
    ("serve", "--engine-args"),
    ("serve", "--override-generation-config"),
    ("bench", "--extra-body"),
]


@pytest.mark.parametrize("command, flag", FLAGS)
def test_an_object_is_taken_as_given(command, flag):
    args = build_parser().parse_args([command, flag, '{"max_num_seqs": 4, "n": [1]}'])
    assert vars(args)[flag.removeprefix("--").replace("-", "_")] == {"max_num_seqs": 4, "n": [1]}


@pytest.mark.parametrize("command, flag", FLAGS)
@pytest.mark.parametrize(
    "value, reason", [("{", "not JSON: "), ('["max_num_seqs"]', "expected a JSON object")]
)
def test_anything_else_exits_2_naming_the_flag(capsys, command, flag, value, reason):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, flag, value])
    assert exited.value.code == 2
    assert f"argument {flag}: {reason}" in capsys.readouterr().err
