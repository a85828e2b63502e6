"""Large legal bodies do not stall the server's event loop (issue 23, item 3).

Measured by the server itself (``/metrics``, see ``loop_stalls``): the app is the real
one, in this process, around a fault-injecting engine that measures the frontend alone
(the embeddings tests stall-check a real tokenizer).
Each body is a few MiB, under the default 8 MiB limit; validating any of them in one
piece (or translating it, on the loop) held the GIL for 0.25 s or more on this machine,
so the old code fails each case.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator

import pytest
from fault_engines import MODEL, FaultInjectingEngine, in_process_client
from loop_stalls import new_stalls

JSON = {"content-type": "application/json"}


class FrontendOnlyEngine(FaultInjectingEngine):
    """The fault-injecting engine with a tokenizer that costs next to nothing, so that
    only the frontend is measured: its UTF-8-bytes tokenizer turns a 1.5 MB prompt into a
    list of 1.5 million ints holding the GIL, where a real (Rust) tokenizer lets it go."""

    def tokenize(self, text: str, add_special_tokens: bool) -> list[int]:
        return [0] * (len(text) // 4)


#: Sized so that the old code stalls past the bar even on a fast CPU (validating 150,000
#: chat messages on the loop took 0.3-0.5 s here; an Anthropic body costs ~3 times as
#: much a message, with its translation), while what still runs on the loop stays well
#: under it: freeing the request's objects, and one collection of those still alive when
#: garbage collection resumes (~0.5 µs a message).
MESSAGES = 100_000
ANTHROPIC_MESSAGES = 30_000


def _chat(last_role: str = "user") -> dict:
    messages = [{"role": "user", "content": "x"}] * (MESSAGES - 1)
    return {"model": MODEL, "messages": [*messages, {"role": last_role, "content": "x"}]}


def _anthropic() -> dict:
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    return {"model": MODEL, "max_tokens": 5, "messages": messages * (ANTHROPIC_MESSAGES // 2)}


def _responses() -> dict:
    item = {"type": "message", "role": "user", "content": "x"}
    return {"model": MODEL, "input": [item] * MESSAGES, "store": False}


def _logit_bias() -> dict:
    """More entries than any vocabulary: a dict this long was checked in one GIL-holding
    call, and then again key by key on the loop (0.25 s and 0.18 s here)."""
    biases = {str(token): 1 for token in range(LOGIT_BIASES)}
    return {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "logit_bias": biases}


def _token_ids() -> dict:
    """Refused for its length, after validation: checking the ints in one GIL-holding
    call, then once per use of ``prompts()`` on the loop, held it 0.25-0.5 s here."""
    return {"model": MODEL, "prompt": list(range(TOKEN_IDS)), "max_tokens": 2}


LOGIT_BIASES = 400_000
TOKEN_IDS = 500_000

CASES = {
    "chat, valid": ("/v1/chat/completions", _chat(), None),
    "chat, last message invalid": (
        "/v1/chat/completions",
        _chat(last_role="robot"),
        f"messages.[{MESSAGES - 1}].role",
    ),
    "anthropic messages": ("/v1/messages", _anthropic(), None),
    "responses input": ("/v1/responses", _responses(), None),
    "400,000 logit_bias entries": ("/v1/chat/completions", _logit_bias(), None),
    "a prompt of 500,000 token ids": ("/v1/completions", _token_ids(), "prompt"),
}


@pytest.fixture
def heap_of_a_fresh_server() -> Iterator[None]:
    """The objects earlier tests left in this process, out of the collector's sight.

    A server's heap at start is frozen the same way by vLLM's own server: here, with
    everything an earlier test left behind, one full collection took over 0.1 s whatever
    the request did. What is measured is what this request adds."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("heap_of_a_fresh_server")
@pytest.mark.parametrize("case", CASES)
def test_a_large_body_leaves_the_event_loop_free(case: str):
    path, body, param = CASES[case]
    content = json.dumps(body).encode()  # before the server's loop is watched

    async def run() -> None:
        async with in_process_client(FrontendOnlyEngine(tokens_before_fault=2)) as client:
            await asyncio.sleep(0.1)  # past the start-up
            before = (await client.get("/metrics")).text
            response = await client.post(path, content=content, headers=JSON)
            await asyncio.sleep(0.05)  # the probe wakes once more
            after = (await client.get("/metrics")).text
        assert new_stalls(before, after) is None, (new_stalls(before, after), response.text[:300])
        assert response.status_code < 500, response.text[:300]
        if param is not None:
            assert response.status_code == 400 and response.json()["error"]["param"] == param

    asyncio.run(run())
