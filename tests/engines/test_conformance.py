"""What every ``Engine`` must do, checked the same way for each backend.

The ``engine`` fixture (tests/engine_fixtures.py) gives each backend in turn. Engine
level, below HTTP: the frontend relies on exactly these behaviours, so a new
backend that passes this file can be served by the gateway.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest
from conftest import ADMIN_HEADERS
from demo_adapters import PHRASES
from engine_fixtures import EngineUnderTest
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
from openai_frontend.generation import choice_requests, run_choices
from openai_frontend.sampling import reject_unsupported

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
STORY = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(ensure_default_model()))


@pytest.fixture(scope="module")
def chat_ids(tokenizer):
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
    "structural_tag": {
        "type": "structural_tag",
        "format": {"type": "const_string", "value": "alpha"},
    },
    "constraint_after_reasoning": "inside",
    "priority": -1,
}


def test_every_field_is_declared_or_refused(engine, chat_ids):
    """Declared fields are accepted (their effects are checked below); the rest the
    frontend refuses by name, and the engine itself refuses too if asked anyway."""
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
        else:
            with pytest.raises(APIError) as refused:
                reject_unsupported(req.sampling, declared)
            api_name = "response_format" if name == "structured_output" else name
            assert refused.value.status == 400 and refused.value.param == api_name


# Effects: every declared field must change what the engine does, observably. --------

#: Seeds tried where sampling must stray or vary: with several, a coincidence is out.
SEEDS = (1, 2, 3, 4)


@dataclass(frozen=True)
class Probe:
    """One engine, a prompt and the model's tokenizer: what an effect check needs."""

    engine: EngineUnderTest
    ids: list[int]
    tokenizer: object

    def deltas(self, **sampling) -> list[Delta]:
        sampling = {"max_tokens": 16, **sampling}
        return self.engine.run(collect(self.engine.engine, request(self.ids, **sampling)))

    def text(self, **sampling) -> str:
        return text_of(self.deltas(**sampling))

    def token(self, text: str) -> int:
        (token_id,) = self.tokenizer.encode(text, add_special_tokens=False)
        return token_id

    def forcing(self, token_id: int) -> dict[int, float]:
        return {token_id: 100.0}


def _collapses_to_greedy(probe: Probe, **field) -> None:
    """Hot sampling strays from the greedy text for some seed; ``field`` keeps only the
    top token, so every seed gives the greedy text back."""
    greedy = probe.text()
    assert any(probe.text(temperature=1.5, seed=seed) != greedy for seed in SEEDS)
    for seed in SEEDS:
        assert probe.text(temperature=1.5, seed=seed, **field) == greedy, (field, seed)


def _changes_greedy_text(probe: Probe, **field) -> None:
    assert probe.text(max_tokens=48, **field) != probe.text(max_tokens=48), field


def effect_temperature(probe: Probe) -> None:
    greedy = probe.text()
    assert all(probe.text(temperature=0.0, seed=seed) == greedy for seed in SEEDS)
    assert len({probe.text(temperature=1.0, seed=seed) for seed in SEEDS}) > 1


def effect_seed(probe: Probe) -> None:
    assert probe.text(temperature=1.0, seed=7) == probe.text(temperature=1.0, seed=7)
    assert len({probe.text(temperature=1.0, seed=seed) for seed in SEEDS}) > 1


def effect_top_k(probe: Probe) -> None:
    _collapses_to_greedy(probe, top_k=1)


def effect_top_p(probe: Probe) -> None:
    _collapses_to_greedy(probe, top_p=1e-6)


def effect_min_p(probe: Probe) -> None:
    _collapses_to_greedy(probe, min_p=0.999)


def effect_presence_penalty(probe: Probe) -> None:
    _changes_greedy_text(probe, presence_penalty=2.0)


def effect_frequency_penalty(probe: Probe) -> None:
    _changes_greedy_text(probe, frequency_penalty=2.0)


def effect_repetition_penalty(probe: Probe) -> None:
    _changes_greedy_text(probe, repetition_penalty=1.8)


def _stop_word(free: str) -> str:
    words = free.split()
    assert len(words) > 4, free
    return words[3]


def effect_stop(probe: Probe) -> None:
    free = probe.text(max_tokens=32)
    stop = _stop_word(free)
    deltas = probe.deltas(max_tokens=32, stop=(stop,))
    assert deltas[-1].finish_reason == "stop"
    assert text_of(deltas) == free[: free.index(stop)]


def effect_include_stop_str_in_output(probe: Probe) -> None:
    free = probe.text(max_tokens=32)
    stop = _stop_word(free)
    kept = probe.text(max_tokens=32, stop=(stop,), include_stop_str_in_output=True)
    assert kept == free[: free.index(stop) + len(stop)]


def effect_logit_bias(probe: Probe) -> None:
    forced = probe.token(" banana")
    text = probe.text(max_tokens=3, logit_bias=probe.forcing(forced))
    assert text == probe.engine.engine.detokenize([forced] * 3)


def effect_stop_token_ids(probe: Probe) -> None:
    forced = probe.forcing(probe.token(" banana"))
    assert probe.deltas(max_tokens=4, logit_bias=forced)[-1].completion_tokens == 4
    stopped = probe.deltas(
        max_tokens=4, logit_bias=forced, stop_token_ids=(probe.token(" banana"),)
    )
    assert stopped[-1].finish_reason == "stop" and stopped[-1].completion_tokens == 1


def _eos_first(probe: Probe) -> dict[int, float]:
    """A bias that makes EOS the first token (checked), so only a field can delay it."""
    bias = probe.forcing(probe.tokenizer.eos_token_id)
    first = probe.deltas(max_tokens=8, logit_bias=bias)
    assert first[-1].finish_reason == "stop" and first[-1].completion_tokens == 1
    return bias


def effect_min_tokens(probe: Probe) -> None:
    bias = _eos_first(probe)
    delayed = probe.deltas(max_tokens=8, logit_bias=bias, min_tokens=5)
    assert delayed[-1].completion_tokens >= 5


def effect_ignore_eos(probe: Probe) -> None:
    bias = _eos_first(probe)
    ignored = probe.deltas(max_tokens=4, logit_bias=bias, ignore_eos=True)
    assert ignored[-1].finish_reason == "length" and ignored[-1].completion_tokens == 4


def _special(probe: Probe) -> tuple[int, str]:
    """A special token that does not end generation (the chat turn opener)."""
    token_id = probe.tokenizer.convert_tokens_to_ids("<|im_start|>")
    return token_id, "<|im_start|>"


def effect_skip_special_tokens(probe: Probe) -> None:
    token_id, text = _special(probe)
    bias = probe.forcing(token_id)
    assert text not in probe.text(max_tokens=2, logit_bias=bias)
    assert text in probe.text(max_tokens=2, logit_bias=bias, skip_special_tokens=False)


def effect_logprobs(probe: Probe) -> None:
    deltas = probe.deltas(max_tokens=4, logprobs=2)
    for delta in deltas:
        assert [lp.token_id for lp in delta.logprobs or []] == delta.token_ids
        for lp in delta.logprobs or []:
            assert lp.logprob <= 0 and 2 <= len(lp.top) <= 3


def effect_prompt_logprobs(probe: Probe) -> None:
    """The prompt's logprobs (first token: None) agree with the logprobs the same tokens
    got when generated: greedy tokens, then fed back as a prompt."""
    generated = probe.deltas(max_tokens=4, temperature=0, logprobs=1)
    sampled = [lp for delta in generated for lp in delta.logprobs or []]
    ids = probe.ids + [lp.token_id for lp in sampled]
    scored = probe.engine.run(
        collect(probe.engine.engine, request(ids, max_tokens=1, prompt_logprobs=1))
    )
    prompt = scored[0].prompt_logprobs
    assert prompt is not None and len(prompt) == len(ids) and prompt[0] is None
    assert [lp.token_id for lp in prompt[1:]] == ids[1:]
    assert all(lp.logprob <= 0 and len(lp.top) <= 2 for lp in prompt[1:])
    tail = [lp.logprob for lp in prompt[-len(sampled) :]]
    assert tail == pytest.approx([lp.logprob for lp in sampled], abs=0.05)


def effect_structured_output(probe: Probe) -> None:
    choices = ["alpha", "beta"]
    guided = StructuredOutput(json_schema={"type": "string", "enum": choices})
    deltas = probe.deltas(max_tokens=24, structured_output=guided)
    assert deltas[-1].finish_reason == "stop"
    assert json.loads(text_of(deltas)) in choices


def effect_structural_tag(probe: Probe) -> None:
    """The tag's grammar holds the reply: a fixed opening, then one of the enum's values."""
    choice = {"type": "json_schema", "json_schema": {"type": "string", "enum": ["alpha", "beta"]}}
    body = {"type": "tag", "begin": "Answer: ", "content": choice, "end": "."}
    tag = {"type": "structural_tag", "format": body}
    deltas = probe.deltas(max_tokens=24, structural_tag=tag)
    assert text_of(deltas) in ('Answer: "alpha".', 'Answer: "beta".')


def effect_constraint_after_reasoning(probe: Probe) -> None:
    """ "inside": the grammar waits for the reply's ``</think>``, which this model never
    writes, so the reply stays free text; without the field the same grammar holds it."""
    guided = StructuredOutput(json_schema={"type": "string", "enum": ["alpha", "beta"]})
    held = probe.text(max_tokens=12, temperature=0, structured_output=guided)
    assert json.loads(held) in ("alpha", "beta")
    free = probe.text(
        max_tokens=12, temperature=0, structured_output=guided, constraint_after_reasoning="inside"
    )
    assert free.strip() and free.strip() not in ('"alpha"', '"beta"'), free


EFFECTS = {
    name.removeprefix("effect_"): check
    for name, check in globals().items()
    if name.startswith("effect_")
}
#: Declared fields whose effect cannot be observed through the Protocol, and why.
ACCEPTED_ONLY = {
    "spaces_between_special_tokens": "this model's byte-level tokenizer puts no spaces between"
    " special tokens, so both settings decode alike (vLLM's fast detokenizer only removes"
    " spaces a tokenizer adds; seen: three <|im_start|> decode without spaces either way)",
    "priority": "it orders requests waiting for the engine, which one request cannot show;"
    " declared only under --scheduling-policy priority, which these engines do not run"
    " (tests/test_priority.py shows the order through a server that does)",
}


def test_every_field_has_an_effect_check_or_a_reason():
    assert set(EFFECTS) | set(ACCEPTED_ONLY) == set(NON_DEFAULT)
    assert not set(EFFECTS) & set(ACCEPTED_ONLY)


@pytest.mark.parametrize("field", sorted(EFFECTS))
def test_declared_field_has_its_effect(engine, chat_ids, tokenizer, field):
    if field not in engine.engine.supported_sampling:
        pytest.skip(f"{engine.name} does not declare {field} (refused: see above)")
    EFFECTS[field](Probe(engine, chat_ids(STORY), tokenizer))


async def _choice_texts(engine, requests: list[GenerateRequest]) -> dict[int, str]:
    texts: dict[int, str] = {}
    async for index, delta in run_choices(engine, requests):
        texts[index] = texts.get(index, "") + delta.text
    return texts


def test_n_choices_differ_at_temperature_one(engine, chat_ids):
    """``n`` is the frontend's fan-out (choice_requests): one engine request a choice,
    each with its own seed, so the choices differ."""
    ids = chat_ids(STORY)
    for seed in (None, 5):
        sampling = SamplingParams(max_tokens=16, temperature=1.0, seed=seed)
        requests = choice_requests(uuid.uuid4().hex, [ids], sampling, len(SEEDS), None)
        texts = engine.run(_choice_texts(engine.engine, requests))
        assert sorted(texts) == list(range(len(SEEDS)))
        assert len(set(texts.values())) > 1, (seed, texts)


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
