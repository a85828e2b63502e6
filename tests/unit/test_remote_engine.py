"""The remote engine's pure parts and its fault handling, without a real upstream.

Upstream faults are injected with ``httpx.MockTransport``: a FAULT-INJECTING fake
upstream, used only here, to produce failures a healthy real server will not (a 500
before the first byte, a stream cut mid-way). Real upstreams are in tests/test_remote.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pytest

from engines.base import (
    EngineError,
    GenerateRequest,
    InvalidRequest,
    SamplingParams,
    StructuredOutput,
)
from engines.remote import RemoteEngine, completion_body
from lora.registry import Adapter
from openai_frontend.default_model import default_model_dir, is_prepared
from openai_frontend.errors import APIError
from openai_frontend.generation import engine_error

needs_tokenizer = pytest.mark.skipif(
    not is_prepared(default_model_dir()),
    reason="needs the default model's tokenizer (`make model` prepares it)",
)


def request(**sampling) -> GenerateRequest:
    return GenerateRequest("r1", [1, 2, 3], SamplingParams(**{"max_tokens": 4, **sampling}))


def test_body_sends_only_what_was_asked():
    assert completion_body(request(), "m") == {
        "model": "m",
        "prompt": [1, 2, 3],
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_body_maps_vllm_extensions_and_logit_bias_keys():
    body = completion_body(
        request(
            temperature=0.0,
            top_k=5,
            stop=("x",),
            stop_token_ids=(7,),
            logit_bias={9: -1.0},
            ignore_eos=True,
            skip_special_tokens=False,
        ),
        "m",
    )
    assert body["temperature"] == 0.0 and body["top_k"] == 5
    assert body["stop"] == ["x"] and body["stop_token_ids"] == [7]
    assert body["logit_bias"] == {"9": -1.0}  # JSON object keys are strings
    assert body["ignore_eos"] is True and body["skip_special_tokens"] is False


def test_structured_output_is_forwarded_as_vllms_structured_outputs():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    body = completion_body(request(structured_output=StructuredOutput(json_schema=schema)), "m")
    assert body["structured_outputs"] == {"json": schema}
    body = completion_body(request(structured_output=StructuredOutput(json_object=True)), "m")
    assert body["structured_outputs"] == {"json_object": True}
    assert "structured_outputs" not in completion_body(request(), "m")


def test_a_priority_is_sent_to_the_upstream_only_when_set():
    assert completion_body(request(priority=-2), "m")["priority"] == -2
    assert "priority" not in completion_body(request(priority=0), "m")


def test_priority_is_declared_only_when_the_upstreams_schedule_by_it():
    def declared(**policy: str) -> frozenset[str]:
        return RemoteEngine(Path("/m"), "m", ["http://a"], **policy).supported_sampling

    assert "priority" not in declared()
    assert "priority" in declared(scheduling_policy="priority")


def test_undeclared_fields_are_refused_by_name():
    with pytest.raises(InvalidRequest) as refused:
        completion_body(request(constraint_after_reasoning=True), "m")
    assert refused.value.param == "constraint_after_reasoning"


def test_logprobs_are_asked_by_token_id_and_prompt_logprobs_whole():
    body = completion_body(request(logprobs=2, prompt_logprobs=1), "m")
    assert body["logprobs"] == 2
    assert body["return_tokens_as_token_ids"] is True
    assert body["prompt_logprobs"] == 1
    assert body["stream"] is False
    assert "stream_options" not in body
    streamed = completion_body(request(logprobs=0), "m")
    assert (streamed["stream"], streamed["logprobs"]) == (True, 0)


def sse(*chunks: str) -> bytes:
    return "".join(f"data: {chunk}\n\n" for chunk in chunks).encode()


GOOD_STREAM = sse(
    '{"choices":[{"index":0,"text":"Hel","finish_reason":null}]}',
    '{"choices":[{"index":0,"text":"lo","finish_reason":"length"}]}',
    '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}',
    "[DONE]",
)


def engine_with(handler, upstreams=("http://a", "http://b")) -> RemoteEngine:
    engine = RemoteEngine(Path(default_model_dir()), "m", list(upstreams))
    engine._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    for upstream in engine._pool:
        upstream.healthy = True
    return engine


async def run(engine: RemoteEngine, req: GenerateRequest | None = None):
    return [delta async for delta in engine.generate(req or request())]


def test_stream_becomes_deltas_with_exact_usage():
    engine = engine_with(lambda _: httpx.Response(200, content=GOOD_STREAM))
    deltas = asyncio.run(run(engine))
    assert [d.text for d in deltas] == ["Hel", "lo"]
    assert [d.finish_reason for d in deltas] == [None, "length"]
    assert deltas[-1].completion_tokens == 2
    assert engine.num_unfinished_requests() == 0


@pytest.mark.parametrize(
    ("details", "cached"),
    [
        (',"prompt_tokens_details":{"cached_tokens":2}', 2),
        ("", 0),
        (',"prompt_tokens_details":null', 0),
    ],
)
def test_the_upstreams_cached_tokens_reach_the_last_delta(details, cached):
    usage = f'{{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4{details}}}'
    stream = sse(
        '{"choices":[{"index":0,"text":"Hi","finish_reason":"stop"}]}',
        f'{{"choices":[],"usage":{usage}}}',
        "[DONE]",
    )
    engine = engine_with(lambda _: httpx.Response(200, content=stream))
    assert asyncio.run(run(engine))[-1].cached_prompt_tokens == cached


def test_a_vllm_upstreams_matched_stop_string_is_the_stop_sequence():
    stream = sse(
        '{"choices":[{"index":0,"text":"Hi","finish_reason":"stop","stop_reason":"END"}]}',
        '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}',
        "[DONE]",
    )
    engine = engine_with(lambda _: httpx.Response(200, content=stream))
    deltas = asyncio.run(run(engine))
    assert [(d.finish_reason, d.stop_sequence) for d in deltas] == [("stop", "END")]


def test_a_failure_before_the_first_byte_is_retried_on_the_other_upstream():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        if request.url.host == calls[0] and len(calls) == 1:
            return httpx.Response(500, json={"error": {"message": "boom"}})
        return httpx.Response(200, content=GOOD_STREAM)

    engine = engine_with(handler)
    deltas = asyncio.run(run(engine))
    assert deltas[-1].finish_reason == "length"
    assert len(calls) == 2 and calls[0] != calls[1]
    first = next(u for u in engine._pool if u.url == f"http://{calls[0]}")
    assert first.healthy is False and "500" in first.last_error  # ejected


def test_a_failure_after_streaming_started_is_not_retried():
    cut = sse('{"choices":[{"index":0,"text":"Hel","finish_reason":null}]}')
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.host)
        return httpx.Response(200, content=cut)  # ends without finish, usage or [DONE]

    engine = engine_with(handler)
    with pytest.raises(EngineError) as failed:
        asyncio.run(run(engine))
    assert failed.value.status == 502 and len(calls) == 1


def test_an_error_event_mid_stream_is_an_engine_error():
    stream = sse(
        '{"choices":[{"index":0,"text":"Hel","finish_reason":null}]}',
        '{"error":{"message":"engine died","type":"server_error"}}',
    )
    engine = engine_with(lambda _: httpx.Response(200, content=stream))
    with pytest.raises(EngineError, match="engine died"):
        asyncio.run(run(engine))


KINDS = {
    "invalid": "invalid_request_error",
    "auth": "authentication_error",
    "permission": "permission_error",
}


@pytest.mark.parametrize(
    "status, error, param, code, kind",
    [
        (400, {"message": "bad top_k", "param": "top_k", "code": 400}, "top_k", None, "invalid"),
        (401, {"message": "bad key", "code": "invalid_api_key"}, None, "invalid_api_key", "auth"),
        (403, {"message": "forbidden"}, None, None, "permission"),
        (404, {"message": "no such model"}, "model", "model_not_found", "invalid"),
        (
            413,
            {"message": "too large", "code": "request_too_large"},
            None,
            "request_too_large",
            "invalid",
        ),
    ],
)
def test_upstream_refusals_pass_through_with_their_status(status, error, param, code, kind):
    engine = engine_with(lambda _: httpx.Response(status, json={"error": error}))
    with pytest.raises(InvalidRequest) as refused:
        asyncio.run(run(engine))
    answered = engine_error(refused.value)  # what the client gets
    assert isinstance(answered, APIError)
    assert (answered.status, answered.param, answered.code) == (status, param, code)
    assert answered.message == error["message"]
    assert answered.body()["error"]["type"] == KINDS[kind]
    assert all(u.healthy for u in engine._pool)  # the request's fault, not the upstream's


def test_overloaded_everywhere_is_429_and_none_healthy_is_503():
    engine = engine_with(lambda _: httpx.Response(429, json={"error": {"message": "busy"}}))
    with pytest.raises(EngineError) as busy:
        asyncio.run(run(engine))
    assert busy.value.status == 429
    for upstream in engine._pool:
        upstream.healthy = False
    with pytest.raises(EngineError) as none:
        asyncio.run(run(engine))
    assert none.value.status == 503


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, json={"error": {"message": "boom"}}),
        httpx.Response(429, json={"error": {"message": "busy"}}),
        httpx.Response(200, content=sse('{"choices":[{"index":0,"text":"H"}]}', "{not json")),
        httpx.ConnectError("refused"),
    ],
    ids=["500", "429", "garbled", "unreachable"],
)
def test_a_client_reads_the_upstreams_number_never_its_url(answer, caplog):
    """Before, the client read ``upstream http://10.0.0.7:8000 answered 500``: the
    internal network's addresses. They stay in the log and the admin view."""

    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    urls = ("http://10.0.0.7:8000", "http://10.0.0.8:8000")
    engine = engine_with(handler, upstreams=urls)
    with (
        caplog.at_level(logging.WARNING, logger="engines.remote"),
        pytest.raises(EngineError) as failed,
    ):
        asyncio.run(run(engine))
    message = engine_error(failed.value).body()["error"]["message"]
    assert "10.0.0." not in message and "http" not in message
    assert message.startswith(("upstream 1 ", "upstream 2 ")), message
    assert any(url in caplog.text for url in urls)
    assert [(u["name"], u["url"]) for u in engine.upstream_status()] == [
        ("upstream 1", urls[0]),
        ("upstream 2", urls[1]),
    ]


def test_least_outstanding_wins():
    engine = engine_with(
        lambda _: httpx.Response(200, content=GOOD_STREAM), ("http://a", "http://b", "http://c")
    )
    a, b, c = engine._pool
    a.outstanding, b.outstanding, c.outstanding = 3, 1, 2
    assert engine._pick() is b
    b.healthy = False
    assert engine._pick() is c


@needs_tokenizer
def test_health_checks_eject_and_readmit_after_cooldown():
    state = {"up": True}

    def handler(request: httpx.Request) -> httpx.Response:
        if not state["up"]:
            raise httpx.ConnectError("refused")
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 99}]})
        return httpx.Response(200, json={})

    async def scenario():
        engine = RemoteEngine(default_model_dir(), "m", ["http://a"], eject_cooldown=0.2)
        engine._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        await engine._check_all()
        assert engine._pool[0].healthy and await engine._upstream_max_len() == 99
        state["up"] = False
        await engine._check_all()
        assert not engine._pool[0].healthy
        state["up"] = True
        await engine._check_all()  # still cooling down: stays out
        assert not engine._pool[0].healthy
        await asyncio.sleep(0.25)
        await engine._check_all()
        assert engine._pool[0].healthy

    asyncio.run(scenario())


def test_a_garbled_stream_is_an_engine_error_not_a_crash():
    stream = sse('{"choices":[{"index":0,"text":"Hel","finish_reason":null}]}', "{not json")
    engine = engine_with(lambda _: httpx.Response(200, content=stream))
    with pytest.raises(EngineError, match="mid-stream"):
        asyncio.run(run(engine))


def test_abort_ends_the_stream_at_its_next_read_without_ejecting_the_upstream():
    async def slow_stream():
        yield b'data: {"choices":[{"index":0,"text":"Hel","finish_reason":null}]}\n\n'
        await asyncio.sleep(0.3)  # the abort lands while the engine waits for this
        yield b'data: {"choices":[{"index":0,"text":"lo","finish_reason":null}]}\n\n'
        yield b"data: [DONE]\n\n"

    engine = engine_with(lambda _: httpx.Response(200, content=slow_stream()))

    async def scenario():
        req = request()
        stream = engine.generate(req)
        first = await anext(stream)
        await engine.abort(req.request_id)
        rest = [delta async for delta in stream]
        return first, rest

    first, rest = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert first.text == "Hel" and rest == []
    assert all(u.healthy for u in engine._pool) and engine.num_unfinished_requests() == 0


@pytest.mark.parametrize(("reason", "expected"), [("repetition", "repetition"), ("error", None)])
def test_an_upstream_finish_reason_keeps_its_meaning(reason: str, expected: str | None):
    stream = sse(
        '{"choices":[{"index":0,"text":"Hel","finish_reason":null}]}',
        json.dumps({"choices": [{"index": 0, "text": "", "finish_reason": reason}]}),
        "[DONE]",
    )
    engine = engine_with(lambda _: httpx.Response(200, content=stream))
    if expected is not None:
        assert asyncio.run(run(engine))[-1].finish_reason == expected
        return
    with pytest.raises(EngineError):
        asyncio.run(run(engine))


def listing_upstream(*names: str):
    """A fake upstream that is up and lists ``names`` at /v1/models."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": name} for name in names]})
        return httpx.Response(200, json={})

    return handler


def checked_engine(handler, **options) -> RemoteEngine:
    engine = RemoteEngine(Path("unused"), "remote-up", ["http://up-1:8000"], **options)
    engine._client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return engine


def test_an_upstream_without_the_model_says_which_and_what_it_lists(caplog):
    engine = checked_engine(listing_upstream("up"), eject_cooldown=0)
    with caplog.at_level(logging.WARNING, logger="engines.remote"):
        asyncio.run(engine._check_all())
        asyncio.run(engine._check_all())  # the same finding again: not logged again
    (status,) = engine.upstream_status()  # what /health/ready shows the admin
    assert status["healthy"] is False
    assert "model 'remote-up'" in status["last_error"] and "it lists: up" in status["last_error"]
    (logged,) = [r.getMessage() for r in caplog.records]
    assert "http://up-1:8000" in logged and status["last_error"] in logged


def test_an_upstream_without_an_adapter_is_reported_but_serves_the_base(caplog):
    engine = checked_engine(listing_upstream("up"), upstream_model="up")
    asyncio.run(engine.add_adapter(Adapter(name="pirate", path=Path("p"), int_id=1, rank=8)))
    with caplog.at_level(logging.WARNING, logger="engines.remote"):
        asyncio.run(engine._check_all())
        asyncio.run(engine._check_all())
    (status,) = engine.upstream_status()
    assert status["healthy"] is True
    assert "adapter 'pirate'" in status["warning"] and "it lists: up" in status["warning"]
    (logged,) = [r.getMessage() for r in caplog.records]
    assert "http://up-1:8000" in logged and status["warning"] in logged


def text_of(token_id: int) -> str:
    return f"<{token_id}>"


def engine_speaking(handler) -> RemoteEngine:
    """A remote engine whose tokenizer names token N ``<N>`` (no model needed)."""
    engine = engine_with(handler)
    engine._token_text = text_of
    return engine


def test_streamed_logprobs_are_read_by_token_id():
    chunk = {
        "choices": [
            {
                "index": 0,
                "text": "Hi",
                "finish_reason": None,
                "logprobs": {
                    "tokens": ["token_id:7"],
                    "token_logprobs": [-0.5],
                    # vLLM's dict holds the sampled token too, beyond the top 1.
                    "top_logprobs": [{"token_id:7": -0.5, "token_id:9": -0.25}],
                    "text_offset": [0],
                },
            }
        ]
    }
    stream = sse(
        json.dumps(chunk),
        '{"choices":[{"index":0,"text":"","finish_reason":"length"}]}',
        '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}',
        "[DONE]",
    )
    engine = engine_speaking(lambda _: httpx.Response(200, content=stream))
    deltas = asyncio.run(run(engine, request(logprobs=1)))
    [token] = deltas[0].logprobs
    assert (token.token_id, token.token, token.logprob) == (7, "<7>", -0.5)
    assert token.top == ((9, "<9>", -0.25),)
    assert deltas[0].token_ids == [7]


def test_prompt_logprobs_come_whole_with_their_ranks():
    answer = {
        "choices": [
            {
                "index": 0,
                "text": "x",
                "finish_reason": "length",
                "prompt_logprobs": [
                    None,
                    {
                        "2": {"logprob": -1.0, "rank": 3, "decoded_token": "b"},
                        "5": {"logprob": -0.1, "rank": 1, "decoded_token": "e"},
                    },
                    {"3": {"logprob": -0.2, "rank": 1, "decoded_token": "c"}},
                ],
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    sent = []

    def handler(upstream_request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(upstream_request.content))
        return httpx.Response(200, json=answer)

    engine = engine_speaking(handler)
    [delta] = asyncio.run(run(engine, request(prompt_logprobs=1)))
    assert sent[0]["stream"] is False
    assert (delta.text, delta.finish_reason, delta.completion_tokens) == ("x", "length", 1)
    first, second, third = delta.prompt_logprobs
    assert first is None
    assert (second.token_id, second.logprob, second.rank, second.top) == (
        2,
        -1.0,
        3,
        ((5, "<5>", -0.1),),
    )
    assert (third.token_id, third.rank, third.top) == (3, 1, ((3, "<3>", -0.2),))


def test_logprobs_named_by_text_are_an_upstream_failure():
    chunk = {
        "choices": [
            {
                "index": 0,
                "text": "Hi",
                "finish_reason": "length",
                "logprobs": {"tokens": ["Hi"], "token_logprobs": [-0.5], "top_logprobs": None},
            }
        ]
    }
    stream = sse(json.dumps(chunk), "[DONE]")
    engine = engine_speaking(lambda _: httpx.Response(200, content=stream))
    with pytest.raises(EngineError) as failed:
        asyncio.run(run(engine, request(logprobs=0)))
    assert failed.value.status == 502
    assert "not named by its id" in str(failed.value)
