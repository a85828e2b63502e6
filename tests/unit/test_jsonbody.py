"""Large bodies are parsed in a worker thread; small and invalid ones as before."""

from __future__ import annotations

import asyncio
import threading

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from openai_frontend.jsonbody import OffLoopJSONRoute


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
