"""The bench's prompts, request bodies and Prometheus deltas, without a server."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from openai_frontend.bench.client import RequestShape
from openai_frontend.bench.corpus import LengthSampler, Prompt, jsonl_prompts, synthetic_prompts
from openai_frontend.bench.server_metrics import deltas
from openai_frontend.default_model import default_model_dir, is_prepared

needs_model = pytest.mark.skipif(
    not is_prepared(default_model_dir()),
    reason="needs the default model's tokenizer (`make model` prepares it)",
)


@needs_model
def test_synthetic_prompts_have_the_asked_length_and_never_repeat():
    from engines.hf_tokenizer import HFTokenizer

    tokenizer = HFTokenizer(default_model_dir())
    rng = random.Random(0)
    prompts = list(
        itertools.islice(
            synthetic_prompts(
                tokenizer, LengthSampler(64, 0, rng), LengthSampler(16, 4, rng), seed=3
            ),
            200,
        )
    )
    assert len({p.text for p in prompts}) == 200
    lengths = [len(tokenizer.encode(p.text, add_special_tokens=False)) for p in prompts]
    # Decoding a cut and encoding again may merge a token at the cut: within one.
    assert all(abs(n - 64) <= 1 for n in lengths), lengths
    assert sum(n == 64 for n in lengths) > 150
    assert len({p.output_tokens for p in prompts}) > 3  # std 4 varies the output length


def test_length_sampler_is_fixed_without_std_and_never_below_one():
    rng = random.Random(0)
    assert {LengthSampler(7, 0, rng)() for _ in range(50)} == {7}
    assert min(LengthSampler(2, 50, rng)() for _ in range(500)) == 1


def test_jsonl_prompts(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        json.dumps({"prompt": "a"}) + "\n\n" + json.dumps({"text": "b", "output_tokens": 5}) + "\n"
    )
    prompts = list(jsonl_prompts(path, LengthSampler(9, 0, random.Random(0))))
    assert prompts == [Prompt("a", None, 9), Prompt("b", None, 5)]


def test_jsonl_without_a_prompt_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a"}\n{"other": 1}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2"):
        list(jsonl_prompts(path, LengthSampler(9, 0, random.Random(0))))


def test_request_bodies_for_chat_and_completions():
    prompt = Prompt("hi", 1, 8)
    chat = RequestShape("m", "chat", True, True, {"temperature": 0, "model": "lora-a"})
    assert chat.payload(prompt) == {
        "model": "lora-a",  # extra_body wins, so adapters can be picked per run
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
    }
    plain = RequestShape("m", "completions", False, False, {})
    assert plain.payload(prompt) == {"model": "m", "max_tokens": 8, "prompt": "hi"}
    assert chat.content({"delta": {"content": "x"}}) == "x"
    assert chat.content({"delta": {"role": "assistant"}}) == ""
    assert plain.content({"text": "y"}) == "y"


def test_request_bodies_and_texts_for_messages():
    prompt = Prompt("hi", 1, 8)
    streamed = RequestShape("m", "messages", True, True, {})
    assert streamed.payload(prompt) == {
        "model": "m",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
        "ignore_eos": True,
        "stream": True,  # no stream_options: a Messages stream always ends with usage
    }
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "x"},
    }
    assert streamed.text(delta) == "x"
    thinking = {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "t"}}
    assert streamed.text(thinking) == ""
    whole = RequestShape("m", "messages", False, False, {})
    reply = {"content": [{"type": "text", "text": "a"}, {"type": "tool_use", "input": {}}]}
    assert whole.text(reply) == "a"


BEFORE = """# TYPE req_total counter
req_total{model="m"} 3
# TYPE running gauge
running 1
# TYPE lat histogram
lat_bucket{le="1.0"} 1
lat_bucket{le="+Inf"} 2
lat_sum 1.5
lat_count 2
"""
AFTER = (
    BEFORE.replace('req_total{model="m"} 3', 'req_total{model="m"} 10')
    .replace("running 1", "running 0")
    .replace("lat_sum 1.5", "lat_sum 4.5")
    .replace("lat_count 2", "lat_count 5")
)


def _parse(text):
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): (f.type, s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if not s.name.endswith("_bucket")
    }


def test_prometheus_deltas():
    rows = deltas({"u": _parse(BEFORE)}, {"u": _parse(AFTER)})
    by_name = {r["metric"]: r for r in rows}
    assert by_name["req_total"]["value"] == 7 and by_name["req_total"]["kind"] == "delta"
    assert by_name["req_total"]["labels"] == {"model": "m"}
    assert by_name["lat_sum"]["value"] == 3.0 and by_name["lat_count"]["value"] == 3
    assert by_name["running"] == {
        "url": "u",
        "metric": "running",
        "labels": {},
        "kind": "after",
        "value": 0.0,
    }


def test_a_failed_scrape_is_a_row_not_a_crash():
    rows = deltas({"u": {"error": "ConnectError: refused"}}, {"u": {"error": "x"}})
    assert rows == [{"url": "u", "error": "x"}]
