"""``/v1/embeddings`` on the real vLLM CPU engine, through one ``--config`` gateway.

The gateway serves the default embedding model (all-MiniLM-L6-v2, from PyPI), SmolLM2
converted to embed by vLLM (last-token pooling, normalized), and a chat model (remote,
the session's test server): so one gateway holds embedding and chat models, and each
refuses the other's endpoint. A second gateway (remote engine, no model loaded) passes
``/v1/embeddings`` through to the first. Expected vectors are always taken from the same
server first; only the real embedding model is asked to order meanings.

``/v1/rerank`` and ``/v1/score`` run on the same two gateways (no server of their own):
their scores are the cosines of the vectors ``/v1/embeddings`` gives.
"""

from __future__ import annotations

import base64
import json
import math
from array import array

import cohere
import httpx
import openai
import pytest
from loop_stalls import new_stalls
from servers import all_stopped, ours, wait_ready
from spec import assert_valid

from openai_frontend.default_embed_model import ensure_default_embed_model
from openai_frontend.default_model import ensure_default_model

pytestmark = pytest.mark.engine

CAT, KITTEN, STOCKS = "a cat sits on the mat", "a kitten on a rug", "stock market report"
#: MiniLM's context as vLLM serves it (sentence_bert_config.json's max_seq_length).
MINILM_CONTEXT = 256


@pytest.fixture(scope="module")
def gateway(server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("embed-gateway")
    ensure_default_embed_model()
    config = folder / "gateway.yaml"
    config.write_text(
        f"""
models:
  - name: minilm
    task: embed
  - name: smol-embed
    task: embed
    model: {ensure_default_model()}
  - name: chat
    engine: remote
    model: {ensure_default_model()}
    upstreams: [{server.base_url}]
    upstream_model: {server.model}
    upstream_api_key: {server.api_key}
"""
    )
    running = ours(None, folder / "gateway.log", "--config", str(config))
    with all_stopped(running):
        wait_ready(running)
        yield running.base_url


def embed(base_url: str, expect: int = 200, **body) -> dict:
    response = httpx.post(base_url + "/v1/embeddings", json=body, timeout=120)
    assert response.status_code == expect, response.text
    return response.json()


def vectors(base_url: str, model: str, inputs) -> list[list[float]]:
    return [item["embedding"] for item in embed(base_url, model=model, input=inputs)["data"]]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def norm(vector: list[float]) -> float:
    return math.sqrt(cosine(vector, vector))


def hidden_size(model: str) -> int:
    folder = ensure_default_embed_model() if model == "minilm" else ensure_default_model()
    return json.loads((folder / "config.json").read_text())["hidden_size"]


def token_ids(base_url: str, model: str, text: str) -> list[int]:
    body = {"model": model, "prompt": text}
    return httpx.post(base_url + "/tokenize", json=body, timeout=60).json()["tokens"]


@pytest.mark.parametrize("model", ["minilm", "smol-embed"])
def test_sdk_two_inputs_give_two_unit_vectors_of_the_hidden_size(gateway, model):
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    result = client.embeddings.create(model=model, input=[CAT, STOCKS])  # base64 on the wire
    assert [item.index for item in result.data] == [0, 1]
    for item in result.data:
        assert len(item.embedding) == hidden_size(model)
        assert norm(item.embedding) == pytest.approx(1.0, abs=1e-3)
    tokens = len(token_ids(gateway, model, CAT)) + len(token_ids(gateway, model, STOCKS))
    assert result.usage.prompt_tokens == result.usage.total_tokens == tokens


def test_base64_is_the_same_floats_and_bodies_match_the_spec(gateway):
    as_floats = embed(gateway, model="minilm", input=[CAT, KITTEN])
    assert_valid(as_floats, "CreateEmbeddingResponse")
    as_base64 = embed(gateway, model="minilm", input=[CAT, KITTEN], encoding_format="base64")
    for packed, plain in zip(as_base64["data"], as_floats["data"], strict=True):
        assert isinstance(packed["embedding"], str)
        decoded = array("f", base64.b64decode(packed["embedding"]))  # little-endian here
        assert decoded.tolist() == pytest.approx(plain["embedding"], abs=1e-5)
        packed["embedding"] = decoded.tolist()  # the spec types embedding as floats only
    assert_valid(as_base64, "CreateEmbeddingResponse")
    assert as_base64["usage"] == as_floats["usage"]


def test_token_ids_give_the_same_vector_as_their_text(gateway):
    cat_ids, kitten_ids = (token_ids(gateway, "minilm", text) for text in (CAT, KITTEN))
    from_text = vectors(gateway, "minilm", [CAT, KITTEN])
    assert vectors(gateway, "minilm", cat_ids)[0] == pytest.approx(from_text[0], abs=1e-5)
    from_ids = vectors(gateway, "minilm", [cat_ids, kitten_ids])
    for got, expected in zip(from_ids, from_text, strict=True):
        assert got == pytest.approx(expected, abs=1e-5)


def test_the_embedding_model_orders_meanings(gateway):
    cat, kitten, stocks = vectors(gateway, "minilm", [CAT, KITTEN, STOCKS])
    # all-MiniLM-L6-v2 gives ~0.61 and ~0.06; a wide margin holds on any CPU.
    assert cosine(cat, kitten) > cosine(cat, stocks) + 0.2


def test_the_converted_chat_model_is_deterministic_and_normalized(gateway):
    """Only that: SmolLM2's last-token state was never trained for similarity, so the
    order it happens to give two sentences is no property to test."""
    first = vectors(gateway, "smol-embed", [CAT, KITTEN])
    again = vectors(gateway, "smol-embed", [CAT, KITTEN])
    for a, b in zip(first, again, strict=True):
        assert a == pytest.approx(b, abs=1e-5)
        assert norm(a) == pytest.approx(1.0, abs=1e-3)


def test_a_batch_of_64_comes_back_in_order(gateway):
    inputs = [
        f"note {i}: " + " ".join(["alpha", "river", "stone", "cloud"][: 1 + i % 4]) * (1 + i % 3)
        for i in range(64)
    ]
    batch = embed(gateway, model="minilm", input=inputs)["data"]
    assert [item["index"] for item in batch] == list(range(64))
    sampled = [0, 1, 2, 21, 42, 62, 63]
    alone = {i: vectors(gateway, "minilm", inputs[i])[0] for i in sampled}
    for i in sampled:
        nearest = max(sampled, key=lambda j: cosine(batch[i]["embedding"], alone[j]))
        assert nearest == i
        assert cosine(batch[i]["embedding"], alone[i]) > 0.999


def test_an_input_over_the_context_is_refused_with_both_numbers_unless_truncated(gateway):
    text = "the quick brown fox " * 80
    count = len(token_ids(gateway, "minilm", text))
    assert count > MINILM_CONTEXT
    error = embed(gateway, 400, model="minilm", input=[CAT, text])["error"]
    assert error["param"] == "input" and error["code"] == "context_length_exceeded"
    assert str(MINILM_CONTEXT) in error["message"] and str(count) in error["message"]
    kept = embed(gateway, model="minilm", input=text, truncate_prompt_tokens=-1)
    assert kept["usage"]["prompt_tokens"] == MINILM_CONTEXT
    short = embed(gateway, model="minilm", input=text, truncate_prompt_tokens=10)
    assert short["usage"]["prompt_tokens"] == 10


def test_thousands_of_texts_leave_the_loop_free_and_stop_at_the_token_cap(gateway):
    """2,048 texts of ~4,000 characters took 5.5 s to tokenize on the event loop."""
    text = "the quick brown fox jumps over the lazy dog " * 90
    before = httpx.get(gateway + "/metrics").text
    error = embed(gateway, 400, model="minilm", input=[text] * 2048, truncate_prompt_tokens=-1)
    assert new_stalls(before, httpx.get(gateway + "/metrics").text) is None
    # Truncated to the context, the cap (300,000 tokens) is passed at input 1,172 of 2,048.
    counted = MINILM_CONTEXT * 1172
    assert error["error"]["param"] == "input"
    assert f"{counted} tokens in its first 1172 inputs" in error["error"]["message"]
    assert "at most 300000" in error["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"dimensions": 64}, "dimensions"),  # all-MiniLM-L6-v2 is not a Matryoshka model
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": [[]]}, "input"),
        ({"input": [-1]}, "input"),
        ({"encoding_format": "int8"}, "encoding_format"),
        ({"truncate_prompt_tokens": 0}, "truncate_prompt_tokens"),
        ({"truncate_prompt_tokens": 100_000}, "truncate_prompt_tokens"),
        ({"input": [CAT] * 2049}, "input"),
        ({"temperature": 0}, "temperature"),
    ],
)
def test_bad_requests_get_a_400_naming_the_parameter(gateway, body, param):
    error = embed(gateway, 400, **{"model": "minilm", "input": CAT, **body})["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_a_token_id_outside_the_vocabulary_is_a_400_and_the_engine_lives_on(gateway):
    error = embed(gateway, 400, model="minilm", input=[10**7])["error"]
    assert error["type"] == "invalid_request_error"
    assert len(vectors(gateway, "minilm", CAT)[0]) == hidden_size("minilm")


def test_each_model_refuses_the_other_endpoint_and_cards_say_which_embed(gateway):
    chat = {"model": "minilm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    response = httpx.post(gateway + "/v1/chat/completions", json=chat, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    assert "embedding model" in response.json()["error"]["message"]
    error = embed(gateway, 400, model="chat", input=CAT)["error"]
    assert error["param"] == "model" and "does not support embeddings" in error["message"]
    cards = httpx.get(gateway + "/v1/models", timeout=30).json()
    assert_valid(cards, "ListModelsResponse")
    assert {card["id"]: card["task"] for card in cards["data"]} == {
        "minilm": "embed",
        "smol-embed": "embed",
        "chat": "generate",
    }


@pytest.fixture(scope="module")
def remote(gateway, tmp_path_factory):
    """Our gateway with the remote engine in front of the first (no engine of its own)."""
    log = tmp_path_factory.mktemp("embed-remote") / "remote.log"
    running = ours(
        ensure_default_embed_model(),
        log,
        *("--engine", "remote", "--task", "embed", "--served-model-name", "minilm"),
        f"--upstream={gateway}",
    )
    with all_stopped(running):
        wait_ready(running)
        yield running.base_url


def test_the_remote_engine_passes_embeddings_through(gateway, remote):
    direct = embed(gateway, model="minilm", input=[CAT, STOCKS])
    passed = embed(remote, model="minilm", input=[CAT, STOCKS])
    assert_valid(passed, "CreateEmbeddingResponse")
    assert passed["usage"] == direct["usage"]
    for got, expected in zip(passed["data"], direct["data"], strict=True):
        assert got["embedding"] == pytest.approx(expected["embedding"], abs=1e-5)
    error = embed(remote, 400, model="minilm", input=CAT, dimensions=64)["error"]
    assert error["param"] == "dimensions"  # the upstream's refusal, passed on


# /v1/rerank and /v1/score on the same gateway: cosine of the embedding model's vectors.

QUERY, RUG, MARKET = "a cat", "A kitten sleeps on a rug.", "The stock market fell today."


def post(base_url: str, path: str, expect: int = 200, **body) -> dict:
    response = httpx.post(base_url + path, json=body, timeout=120)
    assert response.status_code == expect, response.text
    return response.json()


def test_rerank_quality_check_a_kitten_ranks_above_the_stock_market(gateway):
    """The one quality check of the default embedding model here (issue 28), through
    Cohere's own SDK (v2 client: ``/v2/rerank``)."""
    client = cohere.ClientV2(base_url=gateway, api_key="unused", timeout=120)
    result = client.rerank(model="minilm", query=QUERY, documents=[MARKET, RUG])
    assert [item.index for item in result.results] == [1, 0]
    assert result.results[0].relevance_score > result.results[1].relevance_score


def test_rerank_scores_are_the_cosines_of_the_embeddings_best_first(gateway):
    query, market, rug = vectors(gateway, "minilm", [QUERY, MARKET, RUG])
    documents = [MARKET, {"text": RUG}, MARKET]  # Cohere's and Jina's document objects too
    for path in ("/v1/rerank", "/rerank"):
        reply = post(gateway, path, model="minilm", query=QUERY, documents=documents)
        assert reply["id"].startswith("rerank-") and reply["model"] == "minilm"
        assert [item["index"] for item in reply["results"]] == [1, 0, 2]  # ties: input order
        expected = [cosine(query, rug), cosine(query, market), cosine(query, market)]
        got = [item["relevance_score"] for item in reply["results"]]
        assert got == pytest.approx(expected, abs=1e-3)
        assert [item["document"] for item in reply["results"]] == [
            {"text": RUG},
            {"text": MARKET},
            {"text": MARKET},
        ]
        tokens = sum(len(token_ids(gateway, "minilm", text)) for text in [QUERY, *documents[::2]])
        tokens += len(token_ids(gateway, "minilm", RUG))
        assert reply["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_rerank_top_n_and_return_documents_through_cohere_v1_client(gateway):
    client = cohere.Client(base_url=gateway, api_key="unused", timeout=120)
    full = client.rerank(model="minilm", query=QUERY, documents=[MARKET, RUG, CAT])
    top = client.rerank(
        model="minilm", query=QUERY, documents=[MARKET, RUG, CAT], top_n=2, return_documents=False
    )
    assert [item.index for item in top.results] == [item.index for item in full.results][:2]
    assert all(item.document is None for item in top.results)
    assert all(item.document is not None for item in full.results)
    assert len(full.results) == 3


def test_score_one_against_many_and_pairs(gateway):
    one_to_many = post(gateway, "/v1/score", model="minilm", text_1=QUERY, text_2=[MARKET, RUG])
    assert one_to_many["object"] == "list" and one_to_many["id"].startswith("score-")
    assert [(item["index"], item["object"]) for item in one_to_many["data"]] == [
        (0, "score"),
        (1, "score"),
    ]
    reranked = post(gateway, "/v1/rerank", model="minilm", query=QUERY, documents=[MARKET, RUG])
    by_index = {item["index"]: item["relevance_score"] for item in reranked["results"]}
    scores = [item["score"] for item in one_to_many["data"]]
    assert scores == pytest.approx([by_index[0], by_index[1]], abs=1e-3)
    assert one_to_many["usage"]["prompt_tokens"] == reranked["usage"]["prompt_tokens"]
    assert one_to_many["usage"]["completion_tokens"] == 0
    pairs = post(gateway, "/score", model="minilm", text_1=[QUERY, RUG], text_2=[RUG, RUG])
    assert [item["score"] for item in pairs["data"]] == pytest.approx([scores[1], 1.0], abs=1e-3)


RERANK = {"model": "minilm", "query": QUERY, "documents": [MARKET, RUG]}
SCORE = {"model": "minilm", "text_1": QUERY, "text_2": [MARKET, RUG]}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/rerank", {"documents": []}, "documents"),
        ("/v1/rerank", {"documents": [""]}, "documents"),
        ("/v1/rerank", {"documents": [{"content": []}]}, "documents"),
        ("/v1/rerank", {"query": ""}, "query"),
        ("/v1/rerank", {"top_n": -1}, "top_n"),
        ("/v1/rerank", {"return_documents": "yes"}, "return_documents"),
        ("/v1/rerank", {"rank_fields": ["title"]}, "rank_fields"),
        ("/v1/rerank", {"max_tokens_per_doc": 100_000}, "max_tokens_per_doc"),
        ("/v1/rerank", {"truncate_prompt_tokens": 0}, "truncate_prompt_tokens"),
        ("/v1/rerank", {"model": "chat"}, "model"),
        ("/v1/score", {"text_1": [QUERY, RUG], "text_2": [MARKET, RUG, CAT]}, "text_1"),
        ("/v1/score", {"text_2": []}, "text_2"),
        ("/v1/score", {"use_activation": True}, "use_activation"),
    ],
)
def test_bad_rerank_and_score_requests_get_a_400_naming_the_parameter(gateway, path, body, param):
    base = RERANK if "rerank" in path else SCORE
    error = post(gateway, path, 400, **{**base, **body})["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_a_document_over_the_context_is_refused_with_both_numbers_unless_truncated(gateway):
    text = "the quick brown fox " * 80
    count = len(token_ids(gateway, "minilm", text))
    assert count > MINILM_CONTEXT
    error = post(gateway, "/v1/rerank", 400, **{**RERANK, "documents": [RUG, text]})["error"]
    assert error["param"] == "documents" and error["code"] == "context_length_exceeded"
    assert str(MINILM_CONTEXT) in error["message"] and str(count) in error["message"]
    error = post(gateway, "/v1/score", 400, **{**SCORE, "text_1": text})["error"]
    assert error["param"] == "text_1" and str(count) in error["message"]
    query = len(token_ids(gateway, "minilm", QUERY))
    kept = post(gateway, "/v1/rerank", **{**RERANK, "documents": [text], "max_tokens_per_doc": 9})
    assert kept["usage"]["prompt_tokens"] == query + 9


def test_the_remote_engine_passes_rerank_through(gateway, remote):
    direct = post(gateway, "/v1/rerank", **RERANK)
    passed = post(remote, "/v1/rerank", **RERANK)
    assert [item["index"] for item in passed["results"]] == [1, 0]
    for got, expected in zip(passed["results"], direct["results"], strict=True):
        assert got["relevance_score"] == pytest.approx(expected["relevance_score"], abs=1e-3)
    assert passed["usage"] == direct["usage"]
