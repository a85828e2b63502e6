"""``/v1/embeddings``' pure parts: input shapes, base64, the remote body, the task check.

The real engine and the whole endpoint are in tests/test_embeddings.py.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from engines.remote import embedding_body
from openai_frontend.admission import Admission
from openai_frontend.embedding_run import run_embedding
from openai_frontend.errors import APIError
from openai_frontend.metrics import Metrics
from openai_frontend.pooling_inputs import MAX_TOTAL_TOKENS
from openai_frontend.pooling_inputs import tokenized as _tokenized
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


@pytest.mark.parametrize("value", ["", [], [""], [[]], [-1], [1.5], ["a", 1]])
def test_inputs_openai_refuses_are_refused(value):
    with pytest.raises(ValidationError):
        EmbeddingRequest(model="m", input=value)


@pytest.mark.parametrize("value", [["x"] * 2049, [[1]] * 2049, [1] * 2049])
def test_more_than_2048_inputs_is_refused_naming_input_and_the_limit(value):
    with pytest.raises(APIError) as refused:
        EmbeddingRequest(model="m", input=value)
    assert refused.value.param == "input"
    assert "2048" in refused.value.message and "2049" in refused.value.message
    assert "valid string" not in refused.value.message


class CountingTokenizer:
    """200 tokens a text, counting the texts it was asked for."""

    def __init__(self) -> None:
        self.texts = 0

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        self.texts += 1
        return [0] * 200


def test_tokenizing_stops_once_the_token_cap_is_passed_and_says_both_numbers():
    engine = CountingTokenizer()
    with pytest.raises(APIError) as refused:
        _tokenized(engine, ["text"] * 2048, None, 4096)
    assert engine.texts == MAX_TOTAL_TOKENS // 200 + 1  # not all 2,048
    message = refused.value.message
    assert refused.value.param == "input"
    assert f"{MAX_TOTAL_TOKENS + 200} tokens in its first {engine.texts} inputs" in message
    assert f"at most {MAX_TOTAL_TOKENS}" in message


class SlotWatchingEngine:
    """Embeds nothing; notes how many admission slots were taken while it ran."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.slots_taken: list[int] = []

    async def embed(self, request_id: str, inputs: list, dimensions: int | None) -> list:
        self.slots_taken.append(self.admission.running)
        return [[0.0] for _ in inputs]


@pytest.mark.parametrize(("inputs", "slots"), [(1, 1), (3, 3), (2048, 8)])
def test_an_embeddings_request_takes_a_slot_per_input_at_most_all(inputs: int, slots: int):
    admission = Admission(8, None)
    engine = SlotWatchingEngine(admission)
    state = SimpleNamespace(
        admission=admission, config=SimpleNamespace(request_timeout=None), metrics=Metrics()
    )
    target = SimpleNamespace(engine=engine, label="m")
    asyncio.run(run_embedding(state, target, [[1]] * inputs, None, {}))
    assert engine.slots_taken == [slots] and admission.running == 0


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
