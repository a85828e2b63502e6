"""vLLM's gauges with vLLM's meaning on /metrics, and OpenTelemetry traces.

One traced gateway on the default model with vLLM's ``max_num_seqs`` at 1, so a second
request waits in the engine's own queue, and one remote gateway in front of it; both
export spans to a local OTLP/HTTP receiver (tests/otlp_receiver.py). The gauges are
read while requests run: load is kept on until the engine state shows, never slept on.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

import httpx
import pytest
from otlp_receiver import Receiver
from prometheus_client.parser import text_string_to_metric_families
from servers import all_stopped, ours, wait_ready

from openai_frontend.default_model import MODEL_NAME, ensure_default_model

pytestmark = pytest.mark.engine

#: A prompt of about a thousand tokens: its KV blocks show in the usage gauge.
LONG_PROMPT = " ".join(f"word{i}" for i in range(400))
#: Requests kept in flight, and the most sent before a test gives up on a state.
IN_FLIGHT = 3
MOST_REQUESTS = 40
HISTOGRAMS = (
    "vllm:e2e_request_latency_seconds",
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:request_prompt_tokens",
    "vllm:request_generation_tokens",
)


@dataclass(frozen=True)
class Gateways:
    engine: str  # vLLM in process, max_num_seqs 1
    remote: str  # --engine remote, in front of it
    receiver: Receiver


@pytest.fixture(scope="module")
def gateways(tmp_path_factory):
    receiver = Receiver()
    logs = tmp_path_factory.mktemp("observability")
    model = ensure_default_model()
    traced = ("--served-model-name", MODEL_NAME, "--otlp-traces-endpoint", receiver.url)
    saved = os.environ.get("OTEL_BSP_SCHEDULE_DELAY")
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "200"  # the servers export spans within 0.2 s
    try:
        engine = ours(model, logs / "engine.log", *traced, "--engine-args", '{"max_num_seqs": 1}')
        with all_stopped(engine):
            wait_ready(engine)
            remote = ours(
                model,
                logs / "remote.log",
                *traced,
                "--engine",
                "remote",
                "--upstream",
                engine.base_url,
            )
            with all_stopped(remote):
                wait_ready(remote)
                yield Gateways(engine.base_url, remote.base_url, receiver)
    finally:
        if saved is None:
            os.environ.pop("OTEL_BSP_SCHEDULE_DELAY", None)
        else:
            os.environ["OTEL_BSP_SCHEDULE_DELAY"] = saved
        receiver.close()


def scrape(base_url: str) -> dict[str, list]:
    """/metrics' samples by name (each a prometheus_client Sample)."""
    text = httpx.get(base_url + "/metrics", timeout=30).text
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def gauge(samples: dict[str, list], name: str) -> float:
    """The default model's value of a vLLM gauge (its model_name label)."""
    values = [s.value for s in samples.get(name, []) if s.labels.get("model_name") == MODEL_NAME]
    return sum(values)


def long_request(base_url: str, number: int) -> None:
    body = {"model": MODEL_NAME, "prompt": f"{number} {LONG_PROMPT}", "max_tokens": 16}
    response = httpx.post(base_url + "/v1/completions", json=body, timeout=300)
    assert response.status_code == 200, response.text


def under_load(base_url: str, shows: Callable[[dict], bool]) -> dict:
    """Keep IN_FLIGHT long requests running and scrape /metrics between, until a scrape
    ``shows`` the state looked for (returned); fails after MOST_REQUESTS requests."""
    sent = 0
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        running = set()
        try:
            while sent < MOST_REQUESTS or running:
                while len(running) < IN_FLIGHT and sent < MOST_REQUESTS:
                    running.add(pool.submit(long_request, base_url, sent))
                    sent += 1
                samples = scrape(base_url)
                if shows(samples):
                    return samples
                done, running = wait(running, timeout=0.05, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
        finally:
            for future in running:
                future.result()
    ours_ = {name: s for name, s in scrape(base_url).items() if name.startswith("vllm:")}
    raise AssertionError(f"no scrape showed it in {sent} requests: {ours_}")


def saturated(samples: dict) -> bool:
    waiting = gauge(samples, "vllm:num_requests_waiting")
    return waiting >= 1 and gauge(samples, "vllm:kv_cache_usage_perc") > 0


def test_vllm_gauges_move_with_the_engine(gateways):
    seen = under_load(gateways.engine, saturated)
    assert gauge(seen, "vllm:num_requests_running") == 1  # max_num_seqs 1: one runs
    samples = scrape(gateways.engine)
    for name in HISTOGRAMS:  # vLLM's own figures, under vLLM's label
        assert gauge(samples, f"{name}_count") >= 1, name
    (info,) = samples["vllm:cache_config_info"]
    assert int(info.labels["num_gpu_blocks"]) > 0 and int(info.labels["block_size"]) > 0
    assert "openai_frontend_requests_running" in samples  # ours stay beside them


def test_the_remote_engine_sums_its_upstreams_gauges(gateways):
    seen = under_load(gateways.remote, saturated)
    assert gauge(seen, "vllm:num_requests_running") >= 1
    assert 0 < gauge(seen, "vllm:kv_cache_usage_perc") <= 1


def test_adapters_show_in_lora_requests_info(server):
    body = {"model": "pirate", "prompt": "Hello", "max_tokens": 8}
    response = httpx.post(server.url("/v1/completions"), json=body, headers=server.headers)
    assert response.status_code == 200, response.text
    series = scrape(server.base_url)["vllm:lora_requests_info"]
    assert {"max_lora", "running_lora_adapters", "waiting_lora_adapters"} <= set(series[0].labels)
    ran = [s for s in series if "pirate" in s.labels["running_lora_adapters"].split(",")]
    assert ran and ran[0].value > 1e9  # vLLM's meaning: when it last held that set


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def chat(base_url: str, headers: dict) -> httpx.Response:
    body = {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 8,
    }
    response = httpx.post(base_url + "/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def test_a_callers_trace_continues_into_the_gateway_and_the_engine(gateways):
    trace_id, caller, header = traceparent()
    reply = chat(gateways.engine, {"traceparent": header}).json()

    def complete(spans):
        return {s.name for s in spans} >= {"POST /v1/chat/completions", "llm_request"}

    spans = gateways.receiver.wait_for(trace_id, complete)
    ours_ = next(s for s in spans if s.service == "openai-frontend")
    assert ours_.parent_span_id == caller
    engine = next(s for s in spans if s.name == "llm_request")
    assert engine.parent_span_id == ours_.span_id  # vLLM's trace_headers carried it
    attributes = ours_.attributes
    assert attributes["gen_ai.response.model"] == MODEL_NAME
    assert attributes["gen_ai.usage.prompt_tokens"] == reply["usage"]["prompt_tokens"]
    assert attributes["gen_ai.usage.completion_tokens"] == reply["usage"]["completion_tokens"]
    assert attributes["gen_ai.latency.time_to_first_token"] > 0
    assert attributes["openai_frontend.outcome"] == reply["choices"][0]["finish_reason"]


def test_a_request_without_a_trace_starts_one(gateways):
    request_id = chat(gateways.engine, {}).headers["x-request-id"]
    span = gateways.receiver.wait_for_span(
        lambda s: s.attributes.get("gen_ai.request.id") == request_id
    )
    assert span.parent_span_id == ""  # a root span: a trace of its own
    engine = gateways.receiver.wait_for(span.trace_id, lambda spans: len(spans) == 2)
    assert {s.name for s in engine} == {span.name, "llm_request"}


def test_the_remote_engine_passes_the_trace_to_its_upstream(gateways):
    trace_id, caller, header = traceparent()
    chat(gateways.remote, {"traceparent": header})

    def complete(spans):
        return len([s for s in spans if s.service == "openai-frontend"]) == 2 and any(
            s.name == "llm_request" for s in spans
        )

    spans = gateways.receiver.wait_for(trace_id, complete)
    (front,) = [s for s in spans if s.parent_span_id == caller]
    (upstream,) = [s for s in spans if s.service == "openai-frontend" and s is not front]
    assert upstream.parent_span_id == front.span_id
    engine = next(s for s in spans if s.name == "llm_request")
    assert engine.parent_span_id == upstream.span_id
