"""What every ``Engine`` must do, checked the same way for each backend.

The ``engine`` fixture (tests/engine_fixtures.py) gives each backend in turn. Engine
level, below HTTP: the frontend relies on exactly these behaviours, so a new
backend that passes this file can be served by the gateway.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from conftest import ADMIN_HEADERS
from demo_adapters import PHRASES
from transformers import AutoTokenizer

from engines.base import (
    Delta,
    GenerateRequest,
    InvalidRequest,
    SamplingParams,
    StructuredOutput,
)
from openai_frontend.default_model import ensure_default_model
from openai_frontend.errors import APIError
from openai_frontend.sampling import reject_unsupported

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
STORY = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


@pytest.fixture(scope="module")
def chat_ids():
    tokenizer = AutoTokenizer.from_pretrained(str(ensure_default_model()))

    def render(messages) -> list[int]:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return tokenizer.encode(text, add_special_tokens=False)

    return render


def request(ids, adapter=None, **sampling) -> GenerateRequest:
    params = SamplingParams(**{"max_tokens": 16, "temperature": 0.0, **sampling})
    return GenerateRequest(uuid.uuid4().hex, list(ids), params, adapter)


async def collect(engine, req: GenerateRequest) -> list[Delta]:
    return [delta async for delta in engine.generate(req)]


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas)


def test_stream_concatenates_to_the_whole_text(engine, chat_ids):
    ids = chat_ids(STORY)
    deltas = engine.run(collect(engine.engine, request(ids, max_tokens=24, ignore_eos=True)))
    streamed = text_of(deltas)
    assert len(deltas) > 1 and streamed
    if engine.upstream_url is None:  # in-process engines give ids: decode them whole
        whole = engine.engine.detokenize([t for d in deltas for t in d.token_ids])
    else:  # the upstream's own non-streamed answer to the same tokens
        answer = httpx.post(
            engine.upstream_url + "/v1/completions",
            headers=engine.upstream_headers,
            json={
                "model": engine.engine.model().id,
                "prompt": ids,
                "max_tokens": 24,
                "temperature": 0,
                "ignore_eos": True,
            },
            timeout=120,
        )
        whole = answer.json()["choices"][0]["text"]
    assert streamed == whole


def test_length_finish_and_usage(engine, chat_ids):
    deltas = engine.run(
        collect(engine.engine, request(chat_ids(STORY), max_tokens=5, ignore_eos=True))
    )
    assert [d.finish_reason for d in deltas[:-1]] == [None] * (len(deltas) - 1)
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].completion_tokens == 5
    counts = [d.completion_tokens for d in deltas]
    assert counts == sorted(counts)


def test_stop_string_finishes_with_stop(engine, chat_ids):
    ids = chat_ids(STORY)
    free = text_of(engine.run(collect(engine.engine, request(ids, max_tokens=32))))
    words = free.split()
    assert len(words) > 4, free
    stop = words[3]
    deltas = engine.run(collect(engine.engine, request(ids, max_tokens=32, stop=(stop,))))
    assert deltas[-1].finish_reason == "stop"
    cut = text_of(deltas)
    assert stop not in cut and free.startswith(cut)


def test_abort_frees_the_engine(engine, chat_ids):
    async def start_then_close() -> int:
        stream = engine.engine.generate(request(chat_ids(STORY), max_tokens=4000, ignore_eos=True))
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 2:
                break
        await stream.aclose()  # what the frontend does when the client goes away
        deadline = time.monotonic() + 10
        while engine.engine.num_unfinished_requests() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return seen

    assert engine.run(start_then_close()) == 2
    assert engine.engine.num_unfinished_requests() == 0
    if engine.upstream_url is not None:  # and the upstream's engine let it go too
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready = httpx.get(engine.upstream_url + "/health/ready", headers=ADMIN_HEADERS).json()
            if ready["engine_unfinished_requests"] == 0:
                break
            time.sleep(0.2)
        assert ready["engine_unfinished_requests"] == 0


#: A valid non-default value for every neutral sampling field.
NON_DEFAULT = {
    "temperature": 0.7,
    "top_p": 0.9,
    "top_k": 5,
    "min_p": 0.05,
    "seed": 3,
    "stop": ("zzzz",),
    "stop_token_ids": (12345,),
    "presence_penalty": 0.1,
    "frequency_penalty": 0.1,
    "repetition_penalty": 1.1,
    "min_tokens": 1,
    "ignore_eos": True,
    "logit_bias": {42: 0.5},
    "logprobs": 2,
    "prompt_logprobs": 1,
    "include_stop_str_in_output": True,
    "skip_special_tokens": False,
    "spaces_between_special_tokens": False,
    "structured_output": StructuredOutput(json_object=True),
}


def test_every_field_is_declared_or_refused(engine, chat_ids):
    """Declared fields are honoured without error; the rest the frontend refuses by name,
    and the engine itself refuses too if asked anyway."""
    fields = set(SamplingParams.__dataclass_fields__) - {"max_tokens"}
    assert set(NON_DEFAULT) == fields
    declared = engine.engine.supported_sampling
    assert declared <= fields
    ids = chat_ids(QUESTION)
    for name in sorted(fields):
        req = request(ids, max_tokens=3, **{name: NON_DEFAULT[name]})
        assert name in req.sampling.fields_set()
        if name in declared:
            deltas = engine.run(collect(engine.engine, req))
            assert deltas[-1].finish_reason is not None, name
            if name == "logprobs":
                assert all(d.logprobs for d in deltas if d.token_ids), name
        else:
            with pytest.raises(APIError) as refused:
                reject_unsupported(req.sampling, declared)
            api_name = "response_format" if name == "structured_output" else name
            assert refused.value.status == 400 and refused.value.param == api_name


def test_lora_selects_the_adapter(engine, chat_ids):
    if not engine.engine.supports_lora:
        pytest.skip(f"{engine.name} declares no LoRA support")
    ids = chat_ids(QUESTION)
    for name, adapter in engine.adapters.items():
        if engine.name != "remote":
            engine.run(engine.engine.add_adapter(adapter))
        text = text_of(engine.run(collect(engine.engine, request(ids, adapter, max_tokens=16))))
        assert text == PHRASES[name]
    base = text_of(engine.run(collect(engine.engine, request(ids, max_tokens=16))))
    assert base not in PHRASES.values()


def test_concurrent_requests_all_finish(engine, chat_ids):
    prompts = [chat_ids([{"role": "user", "content": f"Count to {n}."}]) for n in range(6)]

    async def all_at_once():
        return await asyncio.gather(
            *(
                collect(engine.engine, request(ids, max_tokens=8, ignore_eos=True))
                for ids in prompts
            )
        )

    for deltas in engine.run(all_at_once()):
        assert deltas[-1].finish_reason == "length" and deltas[-1].completion_tokens == 8
    assert engine.engine.num_unfinished_requests() == 0


def test_an_impossible_request_is_invalid_not_a_crash(engine, chat_ids):
    """A refusal surfaces as InvalidRequest (a 400), and the engine serves on."""
    limit = engine.engine.model().max_model_len
    too_long = request(chat_ids(QUESTION) * (limit // 10), max_tokens=4)  # past the context
    with pytest.raises(InvalidRequest):
        engine.run(collect(engine.engine, too_long))
    deltas = engine.run(collect(engine.engine, request(chat_ids(QUESTION), max_tokens=2)))
    assert deltas[-1].finish_reason is not None
