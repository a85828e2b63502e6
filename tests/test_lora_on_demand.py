"""``--lora-on-demand``: adapters copied into ``--lora-root`` after start load on first use,
once however many requests race for them, and are evicted least recently used beyond
``--max-loras 2``; names that leave the root, or that no file can have, are 404s like any
unknown model; a lookup that loads nothing declares nothing. Real server, real trained adapters
(pirate says "Ahoy matey!", robot says "BEEP BOOP ROBOT.": scripts/demo_adapters.py)."""

from __future__ import annotations

import asyncio
import json
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
        *("--lora-root", str(root), "--lora-on-demand", "--max-loras", "2"),
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


def tokenize(http: httpx.Client, model: str) -> httpx.Response:
    return http.post("/tokenize", json={"model": model, "prompt": "Hello"})


def copy_in(root, name: str, source: str) -> None:
    if not (root / name).exists():
        shutil.copytree(ensure_adapter(source), root / name)


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
    for name, source in (("buccaneer", "pirate"), ("droid", "robot"), ("garcon", "french")):
        copy_in(root, name, source)
    assert chat(http, "droid").status_code == 200
    assert chat(http, "buccaneer").status_code == 200
    evictions = counter(http, "lora_evictions", "droid")
    assert chat(http, "garcon").status_code == 200  # droid out, garcon in
    names = listed(http)
    assert {"buccaneer", "garcon"} <= names and "droid" not in names
    assert counter(http, "lora_evictions", "droid") == evictions + 1
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


def unknown_model_error(http: httpx.Client, name: str) -> dict:
    """What this server answers for a model it does not serve, with the name left out."""
    reply = chat(http, name)
    assert reply.status_code == 404, reply.text
    return {**reply.json()["error"], "message": None}


def test_names_no_file_can_have_are_unknown_models_on_chat_and_tokenize(on_demand):
    server, _ = on_demand
    http = client(server)
    unknown = unknown_model_error(http, "nope")
    for name in ("é" * 130, "a" * 256, f"{MODEL_NAME}:{'é' * 130}", "a\0b"):
        for reply in (chat(http, name), tokenize(http, name)):
            assert reply.status_code == 404, (name[:8], reply.text[:300])
            assert_valid(reply.json(), "ErrorResponse")
            error = reply.json()["error"]
            assert {**error, "message": None} == unknown
            assert name in error["message"]


def test_a_folder_that_is_no_adapter_is_a_400_that_hides_the_servers_paths(on_demand):
    server, root = on_demand
    http = client(server)
    (root / "notes").mkdir()
    (root / "notes" / "README.txt").write_text("not an adapter")
    wide = root / "wide"
    shutil.copytree(ensure_adapter("pirate"), wide)
    config = json.loads((wide / "adapter_config.json").read_text())
    (wide / "adapter_config.json").write_text(json.dumps({**config, "r": 512}))
    for name in ("notes", "wide", f"{MODEL_NAME}:notes"):
        for reply in (chat(http, name), tokenize(http, name)):
            assert reply.status_code == 400, (name, reply.text)
            assert_valid(reply.json(), "ErrorResponse")
            error = reply.json()["error"]
            assert error["param"] == "model" and name.rsplit(":", 1)[-1] in error["message"]
            assert str(root) not in reply.text and root.name not in reply.text, reply.text
    garbled = root / "garbled"  # passes validation; the engine cannot read its weights
    shutil.copytree(ensure_adapter("pirate"), garbled)
    (garbled / "adapter_model.safetensors").write_bytes(b"these bytes are not safetensors")
    reply = chat(http, "garbled")
    assert reply.status_code == 400, reply.text
    assert_valid(reply.json(), "ErrorResponse")
    assert "'garbled'" in reply.json()["error"]["message"]
    assert str(root) not in reply.text and root.name not in reply.text, reply.text
    assert not {"notes", "wide", "garbled"} & listed(http)


def test_a_lookup_that_loads_nothing_neither_lists_nor_evicts(on_demand):
    """/tokenize and a chat refused before it runs name an adapter without loading it:
    it must not be listed, nor count against --max-loras when a real load trims."""
    server, root = on_demand
    http = client(server)
    for name, source in (("corsair", "pirate"), ("automaton", "robot"), ("mimic", "french")):
        copy_in(root, name, source)
    copy_in(root, "parrot", "pirate")
    assert chat(http, "corsair").status_code == 200
    assert chat(http, "automaton").status_code == 200  # the two --max-loras slots
    evicted_before = counter(http, "lora_evictions", "automaton")
    assert tokenize(http, "mimic").status_code == 200
    body = {"model": "mimic", "messages": QUESTION, "max_tokens": 10**9}
    assert http.post("/v1/chat/completions", json=body).status_code == 400
    assert chat(http, "parrot").status_code == 200  # one real load: evicts corsair only
    assert counter(http, "lora_evictions", "automaton") == evicted_before
    names = listed(http)
    assert {"automaton", "parrot"} <= names and not {"mimic", "corsair"} & names
    assert http.get("/v1/models/mimic").status_code == 404
    assert counter(http, "lora_loads", "mimic") == 0
    loads = counter(http, "lora_loads", "automaton")
    reply = chat(http, "automaton")
    assert PHRASES["robot"] in reply.json()["choices"][0]["message"]["content"]
    assert counter(http, "lora_loads", "automaton") == loads, "it stayed loaded"
