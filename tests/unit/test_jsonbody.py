"""Large bodies are parsed in a worker thread; small and invalid ones as before."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from openai_frontend.jsonbody import (
    STEP_MEMBERS,
    THRESHOLD_BYTES,
    OffLoopJSONRoute,
    _decode,
    _dict_in_steps,
)


class Body(BaseModel):
    text: str


@pytest.fixture
def parsed_in(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the threads that parsed bodies via asyncio.to_thread."""
    threads: list[str] = []
    original = asyncio.to_thread

    async def recording(func, *args):
        def run():
            threads.append(threading.current_thread().name)
            return func(*args)

        return await original(run)

    monkeypatch.setattr(asyncio, "to_thread", recording)
    return threads


def _client() -> TestClient:
    router = APIRouter(route_class=OffLoopJSONRoute)

    @router.post("/echo")
    async def echo(body: Body) -> dict:
        return {"length": len(body.text)}

    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def test_large_body_parsed_off_loop_small_on_loop(parsed_in: list[str]):
    client = _client()
    assert client.post("/echo", json={"text": "hi"}).json() == {"length": 2}
    assert parsed_in == []
    assert client.post("/echo", json={"text": "x" * 1_000_000}).json() == {"length": 1_000_000}
    assert len(parsed_in) == 1 and parsed_in[0] != threading.main_thread().name
    broken = b'{"text": "' + b"x" * 300_000
    response = client.post("/echo", content=broken, headers={"content-type": "application/json"})
    assert response.status_code == 422  # FastAPI's own report (our app maps it to a 400)


@pytest.mark.parametrize("depth", [30_000, 300_000])  # 60 KB (FastAPI parses), 600 KB (we do)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_json_nested_past_the_recursion_limit_is_a_400_at_any_size(path: str, depth: int):
    from fault_engines import FaultInjectingEngine, in_process_client
    from spec import assert_valid

    body = b"[" * depth + b"]" * depth
    assert (len(body) > THRESHOLD_BYTES) == (depth == 300_000)

    async def post() -> httpx.Response:
        async with in_process_client(FaultInjectingEngine()) as client:
            return await client.post(
                path, content=body, headers={"content-type": "application/json"}
            )

    response = asyncio.run(post())
    assert response.status_code == 400, response.text[:300]
    assert_valid(response.json(), "ErrorResponse")


def test_a_large_object_decodes_as_json_loads_does_duplicates_included():
    members = ", ".join(f'"{i % 5000}": {i}' for i in range(STEP_MEMBERS * 2))
    text = '{"logit_bias": {' + members + '}, "small": {"a": 1, "a": 2}}'
    assert _decode(text.encode()) == json.loads(text)  # later members win, as in dict


def test_a_large_objects_pairs_are_freed_in_steps():
    pairs = [(str(i), i) for i in range(STEP_MEMBERS + 1)]
    assert _dict_in_steps(pairs) == {str(i): i for i in range(STEP_MEMBERS + 1)}
    assert pairs == []  # emptied here, so the scanner frees an empty list
