"""``--lora-on-demand``: adapters copied into ``--lora-root`` after start load on first use,
once however many requests race for them, and are evicted least recently used beyond
``--max-loras 1``; names that leave the root are 404. Real server, real trained adapters
(pirate says "Ahoy matey!", robot says "BEEP BOOP ROBOT.": scripts/demo_adapters.py)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil

import httpx
import pytest
from conftest import USER_KEY
from demo_adapters import PHRASES, ensure_adapter
from servers import all_stopped, ours, wait_ready
from spec import assert_valid

from openai_frontend.default_model import MODEL_NAME, ensure_default_model

pytestmark = pytest.mark.engine

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def on_demand(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-root")
    for name in PHRASES:
        ensure_adapter(name)
    server = ours(
        ensure_default_model(),
        tmp_path_factory.mktemp("on-demand") / "server.log",
        *("--served-model-name", MODEL_NAME, "--api-key", USER_KEY),
        *("--lora-root", str(root), "--lora-on-demand", "--max-loras", "1"),
    )
    with all_stopped(server):
        wait_ready(server)
        yield server, root


def client(server) -> httpx.Client:
    headers = {"Authorization": f"Bearer {USER_KEY}"}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=300)


def chat(http: httpx.Client, model: str) -> httpx.Response:
    body = {"model": model, "messages": QUESTION, "temperature": 0, "max_tokens": 16}
    return http.post("/v1/chat/completions", json=body)


def counter(http: httpx.Client, metric: str, adapter: str) -> float:
    text = http.get("/metrics").text
    pattern = rf'^openai_frontend_{metric}_total\{{adapter="{adapter}",model="[^"]+"\}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def listed(http: httpx.Client) -> set[str]:
    return {card["id"] for card in http.get("/v1/models").json()["data"]}


def test_an_adapter_copied_in_after_start_answers_its_first_request(on_demand):
    server, root = on_demand
    http = client(server)
    assert chat(http, "buccaneer").status_code == 404
    shutil.copytree(ensure_adapter("pirate"), root / "buccaneer")
    reply = chat(http, f"{MODEL_NAME}:buccaneer")
    assert reply.status_code == 200, reply.text
    assert_valid(reply.json(), "CreateChatCompletionResponse")
    assert PHRASES["pirate"] in reply.json()["choices"][0]["message"]["content"]
    assert "buccaneer" in listed(http)
    assert counter(http, "lora_loads", "buccaneer") == 1


def test_ten_concurrent_first_requests_load_it_once(on_demand):
    server, root = on_demand
    shutil.copytree(ensure_adapter("robot"), root / "droid")

    async def ten():
        headers = {"Authorization": f"Bearer {USER_KEY}"}
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=headers, timeout=300
        ) as http:
            body = {"model": "droid", "messages": QUESTION, "temperature": 0, "max_tokens": 16}
            return await asyncio.gather(
                *(http.post("/v1/chat/completions", json=body) for _ in range(10))
            )

    replies = asyncio.run(ten())
    assert [r.status_code for r in replies] == [200] * 10
    assert all(PHRASES["robot"] in r.json()["choices"][0]["message"]["content"] for r in replies)
    assert counter(client(server), "lora_loads", "droid") == 1


def test_beyond_max_loras_the_least_recently_used_is_evicted_and_reloads(on_demand):
    server, root = on_demand
    http = client(server)
    for name, source in (("buccaneer", "pirate"), ("droid", "robot")):
        if not (root / name).exists():
            shutil.copytree(ensure_adapter(source), root / name)
    assert chat(http, "droid").status_code == 200
    assert chat(http, "buccaneer").status_code == 200  # droid out, buccaneer in
    names = listed(http)
    assert "buccaneer" in names and "droid" not in names
    evictions = counter(http, "lora_evictions", "droid")
    assert evictions >= 1
    reply = chat(http, "droid")  # back on demand, still its own phrase
    assert PHRASES["robot"] in reply.json()["choices"][0]["message"]["content"]
    assert "buccaneer" not in listed(http)
    assert counter(http, "lora_evictions", "buccaneer") >= 1


def test_names_that_leave_the_root_are_not_found(on_demand, tmp_path):
    server, root = on_demand
    http = client(server)
    outside = tmp_path / "outside"
    shutil.copytree(ensure_adapter("pirate"), outside)
    os.symlink(outside, root / "escape")
    for name in ("escape", "..", f"../{root.name}", str(outside), f"{MODEL_NAME}:..", "nope"):
        reply = chat(http, name)
        assert reply.status_code == 404, (name, reply.text)
        assert reply.json()["error"]["code"] == "model_not_found"
    assert "escape" not in listed(http)
