"""How much engine work one request may start, through the real app.

FaultInjectingEngine (no fault injected here) records what the frontend asked of the
engine, so the limits are checked on the frontend alone, before any engine work.
"""

from __future__ import annotations

import asyncio

from fault_engines import MODEL, FaultInjectingEngine, in_process_client
from spec import assert_valid

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def _post(engine: FaultInjectingEngine, path: str, body: dict, **config: object) -> dict:
    async def post() -> dict:
        async with in_process_client(engine, **config) as client:
            response = await client.post(path, json=body)
            return {"status": response.status_code, **response.json()}

    return asyncio.run(post())


def test_many_tiny_prompts_times_n_is_a_400_naming_the_limit():
    engine = FaultInjectingEngine()
    body = {"model": MODEL, "prompt": [[1]] * 20_000, "n": 128, "max_tokens": 1}
    answer = _post(engine, "/v1/completions", body)
    assert answer["status"] == 400
    assert answer["error"]["param"] == "prompt"
    assert "--max-prompts-per-request" in answer["error"]["message"]
    assert "128" in answer["error"]["message"]
    assert engine.generated == []


def test_n_times_prompts_past_the_sequence_limit_is_a_400_naming_it():
    engine = FaultInjectingEngine()
    body = {"model": MODEL, "prompt": [[1]] * 3, "n": 2, "max_tokens": 1}
    answer = _post(engine, "/v1/completions", body, max_sequences_per_request=5)
    assert answer["status"] == 400
    assert_valid({"error": answer["error"]}, "ErrorResponse")
    assert answer["error"]["param"] == "n"
    assert "6 sequences" in answer["error"]["message"]
    assert "--max-sequences-per-request" in answer["error"]["message"]
    assert engine.generated == []
    answer = _post(engine, "/v1/chat/completions", {**CHAT, "n": 6}, max_sequences_per_request=5)
    assert (answer["status"], answer["error"]["param"]) == (400, "n")


def test_within_the_limits_every_sequence_runs():
    engine = FaultInjectingEngine(tokens_before_fault=1)
    body = {"model": MODEL, "prompt": [[1]] * 3, "n": 2, "max_tokens": 1}
    answer = _post(engine, "/v1/completions", body, max_sequences_per_request=6)
    assert answer["status"] == 200
    assert len(answer["choices"]) == len(engine.generated) == 6


def test_more_sequences_than_concurrent_slots_is_a_400_not_a_deadlock():
    engine = FaultInjectingEngine()
    answer = _post(engine, "/v1/chat/completions", {**CHAT, "n": 5}, max_concurrent_requests=4)
    assert answer["status"] == 400
    assert answer["error"]["param"] == "n"
    assert "--max-concurrent-requests" in answer["error"]["message"]
    assert engine.generated == []


def test_concurrent_slots_count_sequences_not_requests():
    """Two requests of n=3 with 4 slots: the second waits until the first is done."""
    engine = FaultInjectingEngine(tokens_before_fault=1, hold=asyncio.Event())

    async def scenario() -> tuple[int, list[int]]:
        async with in_process_client(engine, max_concurrent_requests=4) as client:
            first = asyncio.create_task(client.post("/v1/chat/completions", json={**CHAT, "n": 3}))
            while engine.running < 3:
                await asyncio.sleep(0.01)
            second = asyncio.create_task(client.post("/v1/chat/completions", json={**CHAT, "n": 3}))
            await asyncio.sleep(0.2)
            running_while_held = engine.running
            engine.hold.set()
            answers = await asyncio.gather(first, second)
            return running_while_held, [a.status_code for a in answers]

    running_while_held, statuses = asyncio.run(scenario())
    assert running_while_held == 3, "the second request's 3 sequences do not fit in 1 slot"
    assert statuses == [200, 200]
    assert engine.peak_running == 3
    assert len(engine.generated) == 6


def test_completions_default_to_16_tokens_and_chat_to_the_context_left():
    engine = FaultInjectingEngine(max_model_len=4096)
    _post(engine, "/v1/completions", {"model": MODEL, "prompt": [1, 2, 3]})
    assert engine.generated[-1].sampling.max_tokens == 16
    _post(engine, "/v1/completions", {"model": MODEL, "prompt": [1] * 4090})
    assert engine.generated[-1].sampling.max_tokens == 6, "16 capped by the context left"
    _post(engine, "/v1/chat/completions", CHAT)
    prompt_tokens = len(engine.generated[-1].prompt_token_ids)
    assert engine.generated[-1].sampling.max_tokens == 4096 - prompt_tokens
