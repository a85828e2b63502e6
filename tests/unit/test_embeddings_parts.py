"""``/v1/embeddings``' pure parts: input shapes, base64, the remote body, the task check.

The real engine and the whole endpoint are in tests/test_embeddings.py.
"""

from __future__ import annotations

import base64
import struct

import pytest
from pydantic import ValidationError

from engines.remote import embedding_body
from openai_frontend.errors import APIError
from openai_frontend.routers.embeddings import _encoded
from openai_frontend.schemas.embeddings import EmbeddingRequest
from openai_frontend.state import wrong_task


@pytest.mark.parametrize(
    ("value", "items"),
    [
        ("one text", ["one text"]),
        (["a", "b"], ["a", "b"]),
        ([5, 6, 7], [[5, 6, 7]]),
        ([[5], [6, 7]], [[5], [6, 7]]),
    ],
)
def test_every_input_shape_is_a_list_of_items(value, items):
    assert EmbeddingRequest(model="m", input=value).inputs() == items


@pytest.mark.parametrize(
    "value", ["", [], [""], [[]], [-1], [1.5], ["a", 1], ["x"] * 2049, [[1]] * 2049]
)
def test_inputs_openai_refuses_are_refused(value):
    with pytest.raises(ValidationError):
        EmbeddingRequest(model="m", input=value)


def test_truncating_to_nothing_is_refused_by_name():
    with pytest.raises(APIError) as refused:
        EmbeddingRequest(model="m", input="x", truncate_prompt_tokens=0)
    assert refused.value.param == "truncate_prompt_tokens"


def test_base64_is_little_endian_float32_of_the_same_values():
    vector = [0.5, -1.25, 3.0e-8, 1.0]
    packed = base64.b64decode(_encoded(vector, as_base64=True))
    assert struct.unpack("<4f", packed) == pytest.approx(vector, rel=1e-7)
    assert _encoded(vector, as_base64=False) is vector


def test_the_upstream_gets_token_ids_as_floats_and_dimensions_only_when_asked():
    assert embedding_body([[1, 2]], None, "up") == {
        "model": "up",
        "input": [[1, 2]],
        "encoding_format": "float",
    }
    assert embedding_body([[1]], 64, "up")["dimensions"] == 64


def test_the_wrong_task_names_the_model_and_what_it_does():
    embed_only, generate_only = wrong_task("e", "embed"), wrong_task("g", "generate")
    assert embed_only.param == generate_only.param == "model"
    assert embed_only.status == generate_only.status == 400
    assert "embedding model" in embed_only.message
    assert "does not support embeddings" in generate_only.message
