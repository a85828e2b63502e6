"""A bad adapter loaded at run time through the admin API never stops the server.

(Declared at start, a bad adapter is a configuration error: tests/test_cli.py checks
that the server exits 2 naming it.) Two kinds: one validation refuses (rank above
--max-lora-rank), and one that passes validation but whose weights the engine cannot
read; each is a 400 naming it, and the server keeps serving.
"""

from __future__ import annotations

import json

import httpx
from conftest import engine_view
from spec import assert_valid

CONFIG = {"peft_type": "LORA", "target_modules": ["q_proj"], "lora_alpha": 16}
BAD_ADAPTERS = {
    "too-wide": ({**CONFIG, "r": 512}, b""),
    "unreadable-weights": ({**CONFIG, "r": 8}, b"these bytes are not safetensors"),
}


def test_bad_adapters_at_run_time_are_400s_and_the_server_serves_on(server, http):
    for name, (config, weights) in BAD_ADAPTERS.items():
        folder = server.lora_root / name
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps(config))
        (folder / "adapter_model.safetensors").write_bytes(weights)
        response = http.post(
            "/v1/load_lora_adapter",
            json={"lora_name": name, "lora_path": str(folder)},
            headers={"Authorization": f"Bearer {server.admin_key}"},
        )
        assert response.status_code == 400, (name, response.text)
        assert_valid(response.json(), "ErrorResponse")
        error = response.json()["error"]
        assert error["param"] == "lora_path" and f"'{name}'" in error["message"]
        assert name not in [m["id"] for m in http.get("/v1/models").json()["data"]]
    chat = {"model": server.model, "messages": [{"role": "user", "content": "Hi"}]}
    answer = http.post("/v1/chat/completions", json={**chat, "max_tokens": 4})
    assert answer.status_code == 200, answer.text
    assert httpx.get(server.url("/health/ready")).status_code == 200
    assert engine_view(http)["status"] == "ready"
