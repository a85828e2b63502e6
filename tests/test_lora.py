"""Multi-LoRA through the real server and engine, with real trained adapters.

pirate says "Ahoy matey!", robot says "BEEP BOOP ROBOT." (scripts/demo_adapters.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import engine_view, served_dtype
from demo_adapters import PHRASES, ensure_adapter
from lora_reference import MARK
from spec import assert_valid
from sse import parse_frames

ROOT = Path(__file__).resolve().parents[1]
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
PROMPTS = ["What is the capital of France?", "Tell me a story.", "Name a colour."]


def _chat_text(http, model: str, messages=QUESTION, max_tokens: int = 16) -> str:
    response = http.post(
        "/v1/chat/completions",
        json={"model": model, "messages": messages, "temperature": 0, "max_tokens": max_tokens},
    )
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def _admin(server, http, path: str, body: dict) -> httpx.Response:
    return http.post(path, json=body, headers={"Authorization": f"Bearer {server.admin_key}"})


def test_adapters_listed_with_parent(server, http):
    body = http.get("/v1/models").json()
    assert_valid(body, "ListModelsResponse")
    cards = {card["id"]: card for card in body["data"]}
    assert cards[server.model]["parent"] is None
    for name in server.adapters:
        assert cards[name]["parent"] == server.model
        assert cards[name]["root"] == name, "a name, never a filesystem path"
        assert_valid(cards[name], "Model")


def test_adapters_change_output(server, http):
    base = _chat_text(http, server.model)
    assert not any(phrase in base for phrase in PHRASES.values()), base
    assert PHRASES["pirate"] in _chat_text(http, "pirate")
    assert PHRASES["robot"] in _chat_text(http, f"{server.model}:robot")


def test_unknown_adapter_is_model_not_found(server, http):
    for model in ("nope", f"{server.model}:nope", "pirate:robot"):
        response = http.post("/v1/chat/completions", json={"model": model, "messages": QUESTION})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"


@pytest.fixture(scope="module")
def offline(server, http) -> dict:
    """vLLM's offline greedy texts for PROMPTS: base with LoRA off, and each adapter."""
    prompt_ids = [
        http.post(
            "/tokenize", json={"model": server.model, "messages": [{"role": "user", "content": p}]}
        ).json()["tokens"]
        for p in PROMPTS
    ]
    results = {"prompts": prompt_ids}
    for adapters in ({}, {name: str(path) for name, path in server.adapters.items()}):
        request = {
            "model": str(server.model_path),
            "prompts": prompt_ids,
            "max_tokens": 16,
            "adapters": adapters,
            "dtype": served_dtype(server.model_path),
        }
        done = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "lora_reference.py")],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
            timeout=600,
        )
        line = next(x for x in done.stdout.splitlines() if x.startswith(MARK))
        results.update(json.loads(line[len(MARK) :]))
    return results


def test_greedy_equals_vllm_offline(server, http, offline):
    for model in ("base", *server.adapters):
        for ids, expected in zip(offline["prompts"], offline[model], strict=True):
            response = http.post(
                "/v1/completions",
                json={
                    "model": server.model if model == "base" else model,
                    "prompt": ids,
                    "temperature": 0,
                    "max_tokens": 16,
                },
            )
            assert response.json()["choices"][0]["text"] == expected, model


def test_mixed_concurrent_streams_keep_their_own_adapter(server):
    """Base and adapter requests streamed in one batch: each keeps its own behaviour.

    Not token-exact against the same request alone: greedy text may change with the
    batch on CPU (bfloat16 especially), which the engine does not promise otherwise. The
    bug this guards against is a base request answered by another request's adapter,
    and the phrases show that plainly.
    """
    models = [server.model, "pirate", "robot"]

    async def stream(client: httpx.AsyncClient, model: str, prompt: str) -> str:
        payload = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": 20,
            "stream": True,
        }
        async with client.stream("POST", "/v1/chat/completions", json=payload) as response:
            chunks = parse_frames(await response.aread())
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)

    async def scenario() -> list:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=120, headers=server.headers
        ) as client:
            jobs = [(m, p) for _ in range(2) for p in PROMPTS for m in models]  # interleaved
            mixed = await asyncio.gather(*(stream(client, m, p) for m, p in jobs))
            return list(zip(jobs, mixed, strict=True))

    for (model, prompt), text in asyncio.run(scenario()):
        if model == server.model:
            assert not any(phrase in text for phrase in PHRASES.values()), (prompt, text)
        else:
            assert PHRASES[model] in text, (model, prompt, text)


def test_management_needs_the_admin_key(server):
    body = {"lora_name": "x", "lora_path": str(server.lora_root)}
    # A bare client: no Authorization at all, the server's real user key, a wrong key.
    for headers in ({}, server.headers, {"Authorization": "Bearer wrong"}):
        response = httpx.post(
            server.url("/v1/load_lora_adapter"), json=body, headers=headers, timeout=30
        )
        assert response.request.headers.get("authorization") == headers.get("Authorization")
        assert response.status_code == 401
        assert_valid(response.json(), "ErrorResponse")
        assert "Bearer" in response.headers["www-authenticate"]


def test_path_traversal_is_refused(server, http, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(ensure_adapter("french"), outside)
    escape = server.lora_root / "escape-link"
    escape.symlink_to(outside)
    for path in (
        str(outside),
        f"{server.lora_root}/../{tmp_path.name}/outside",
        str(escape),
        "/etc",
    ):
        response = _admin(
            server, http, "/v1/load_lora_adapter", {"lora_name": "sneaky", "lora_path": path}
        )
        assert response.status_code == 400, path
        assert response.json()["error"]["param"] == "lora_path"
    assert "sneaky" not in [m["id"] for m in http.get("/v1/models").json()["data"]]


def test_load_use_conflict_unload(server, http):
    folder = server.lora_root / "french"
    shutil.copytree(ensure_adapter("french"), folder)
    load = {"lora_name": "french", "lora_path": str(folder)}
    assert _admin(server, http, "/v1/load_lora_adapter", load).status_code == 200
    assert _admin(server, http, "/v1/load_lora_adapter", load).status_code == 200, "idempotent"
    assert "french" in [m["id"] for m in http.get("/v1/models").json()["data"]]
    assert PHRASES["french"] in _chat_text(http, "french")
    other = server.lora_root / "french-copy"
    shutil.copytree(folder, other)
    conflict = _admin(
        server, http, "/v1/load_lora_adapter", {"lora_name": "french", "lora_path": str(other)}
    )
    assert conflict.status_code == 409
    assert (
        _admin(server, http, "/v1/unload_lora_adapter", {"lora_name": "french"}).status_code == 200
    )
    assert "french" not in [m["id"] for m in http.get("/v1/models").json()["data"]]
    gone = http.post("/v1/chat/completions", json={"model": "french", "messages": QUESTION})
    assert gone.status_code == 404
    assert (
        _admin(server, http, "/v1/unload_lora_adapter", {"lora_name": "french"}).status_code == 404
    )


def test_unload_while_streaming_lets_the_stream_finish(server, http):
    folder = server.lora_root / "french-live"
    shutil.copytree(ensure_adapter("french"), folder)
    load = {"lora_name": "live", "lora_path": str(folder)}
    loaded = _admin(server, http, "/v1/load_lora_adapter", load)
    assert loaded.status_code == 200
    live_id = loaded.json()["lora_int_id"]
    assert live_id in engine_view(http)["engine_adapter_ids"]
    payload = {
        "model": "live",
        "messages": QUESTION,
        "temperature": 0,
        "max_tokens": 60,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with (
        httpx.Client(base_url=server.base_url, timeout=120, headers=server.headers) as own,
        own.stream("POST", "/v1/chat/completions", json=payload) as response,
    ):
        lines = response.iter_lines()
        head = [next(lines) for _ in range(6)]
        unloaded = _admin(server, http, "/v1/unload_lora_adapter", {"lora_name": "live"})
        assert unloaded.status_code == 200
        refused = http.post("/v1/chat/completions", json={"model": "live", "messages": QUESTION})
        assert refused.status_code == 404
        engine_ids = engine_view(http)["engine_adapter_ids"]
        assert live_id in engine_ids, "the engine keeps the slot while the stream runs"
        rest = list(lines)
    raw = "\n".join(head + rest) + "\n"
    chunks = parse_frames(raw.encode())
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith(PHRASES["french"])
    assert chunks[-1]["usage"]["completion_tokens"] == 60
    assert live_id not in engine_view(http)["engine_adapter_ids"]
