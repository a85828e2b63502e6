"""``--engine-args``: vLLM's own arguments reach the engine. The README's example, n-gram
speculative decoding, starts on the CPU build and serves; what vLLM ignores under
speculation (min_p, logit_bias) is refused by name instead of being dropped.

Unknown or frontend-owned keys exit 2 before anything loads (tests/test_cli.py)."""

from __future__ import annotations

import json

import httpx
import pytest
from servers import default_model_server
from spec import assert_valid

from openai_frontend.default_model import MODEL_NAME

pytestmark = pytest.mark.engine

NGRAM = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 3}
ENGINE_ARGS = {"speculative_config": NGRAM, "max_num_seqs": 8}


@pytest.fixture(scope="module")
def speculating(tmp_path_factory):
    log = tmp_path_factory.mktemp("engine-args") / "server.log"
    flags = ("--max-model-len", "2048", "--engine-args", json.dumps(ENGINE_ARGS))
    with default_model_server(log, *flags) as server:
        yield server


def chat(server, **fields) -> httpx.Response:
    body = {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "Count: 1 2 3 4 5 1 2 3 4 5 1 2 3"}],
        "max_tokens": 16,
        "temperature": 0,
        **fields,
    }
    return httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=120)


def test_the_engine_runs_with_the_ngram_speculator(speculating):
    log = speculating.log_path.read_text()
    assert "speculative_config=SpeculativeConfig(method='ngram'" in log
    assert "num_spec_tokens=3" in log


def test_it_serves_spec_valid_chat_streamed_and_not(speculating):
    reply = chat(speculating)
    assert reply.status_code == 200, reply.text
    assert_valid(reply.json(), "CreateChatCompletionResponse")
    assert reply.json()["usage"]["completion_tokens"] == 16
    assert reply.json()["choices"][0]["message"]["content"]
    with httpx.stream(
        "POST",
        speculating.base_url + "/v1/chat/completions",
        json={
            "model": MODEL_NAME,
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 8,
            "stream": True,
        },
        timeout=120,
    ) as stream:
        lines = [line for line in stream.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    for line in lines[:-1]:
        assert_valid(json.loads(line[6:]), "CreateChatCompletionStreamResponse")


@pytest.mark.parametrize("field, value", [("min_p", 0.1), ("logit_bias", {"42": 5})])
def test_what_speculation_ignores_is_refused_by_name(speculating, field, value):
    reply = chat(speculating, **{field: value})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == field
